// Package local is the embedded chain of `cocoon demo`: accounts live in a bbolt file in
// the data directory and every message runs through tongo's transaction emulator with the
// real contract and wallet code (settle/emu). A faucet mints test TON. It implements
// chain.Chain, so roles cannot tell it from TON, and it keeps its state across restarts.
//
// The data file is locked by the process that opens it (bbolt), so one process owns the local
// chain: `cocoon demo`, which runs all roles in-process, or `cocoon chain serve`
// (settle/chain/chainserve), which serves it to other processes; a second Open of the same file
// waits five seconds and fails.
package local

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"
	bolt "go.etcd.io/bbolt"

	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/emu"
)

var (
	bucketAccounts = []byte("accounts")
	bucketMeta     = []byte("meta")
	keyLT          = []byte("lt")
)

// messageLifetime is long because the chain clock may run ahead of the wall clock (tests
// and demos jump over close delays); seqnos still stop replays.
const messageLifetime = 30 * 24 * time.Hour

// DefaultFile is the local chain's file name inside a data directory.
const DefaultFile = "chain.db"

// OpenDir opens the chain kept in dataDir/DefaultFile, creating the directory if needed.
func OpenDir(dataDir string, opts Options) (*Chain, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("open local chain: %w", err)
	}
	return Open(filepath.Join(dataDir, DefaultFile), opts)
}

// Options tune Open.
type Options struct {
	// Clock is the chain's time; default time.Now.
	Clock func() time.Time
}

// Chain is the embedded chain. It is safe for concurrent use.
type Chain struct {
	chain.Chain
	mu    sync.Mutex
	emu   *emu.Chain
	db    *bolt.DB
	clock func() time.Time
}

// Open opens (or creates) the chain stored at path.
func Open(path string, opts Options) (*Chain, error) {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	// The emulator first: a binary without one refuses before it creates the data file.
	e, err := emu.New(uint32(opts.Clock().Unix()))
	if err != nil {
		return nil, fmt.Errorf("open local chain: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open local chain %s: %w", path, err)
	}
	c := &Chain{emu: e, db: db, clock: opts.Clock}
	if err := c.load(); err != nil {
		_ = db.Close()
		return nil, err
	}
	c.Chain = chain.New(backend{c}, chain.Options{MessageLifetime: messageLifetime, ConfirmEvery: time.Millisecond})
	return c, nil
}

// Close releases the data file.
func (c *Chain) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.db.Close(); err != nil {
		return fmt.Errorf("close local chain: %w", err)
	}
	return nil
}

// Faucet mints amount nanoTON to an account (creating it uninitialized if needed).
func (c *Chain) Faucet(_ context.Context, to ton.AccountID, amount uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.emu.Mint(to, amount)
	if err := c.save([]ton.AccountID{to}); err != nil {
		return fmt.Errorf("faucet: %w", err)
	}
	return nil
}

func (c *Chain) run(f func() (emu.Trace, error)) (emu.Trace, error) {
	c.emu.SetNow(uint32(c.clock().Unix()))
	tr, err := f()
	touched := make([]ton.AccountID, 0, len(tr))
	for _, tx := range tr {
		touched = append(touched, tx.Account)
	}
	// Whatever ran is part of the chain now, even if a later message failed.
	if serr := c.save(touched); serr != nil {
		return tr, errors.Join(err, serr)
	}
	return tr, err
}

func accountKey(id ton.AccountID) []byte {
	k := make([]byte, 36)
	binary.BigEndian.PutUint32(k, uint32(id.Workchain))
	copy(k[4:], id.Address[:])
	return k
}

func (c *Chain) save(ids []ton.AccountID) error {
	return c.db.Update(func(tx *bolt.Tx) error {
		accounts, err := tx.CreateBucketIfNotExists(bucketAccounts)
		if err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		for _, id := range ids {
			cell := boc.NewCell()
			if err := tlb.Marshal(cell, c.emu.Account(id)); err != nil {
				return fmt.Errorf("encode account %s: %w", id.ToRaw(), err)
			}
			b, err := cell.ToBoc()
			if err != nil {
				return fmt.Errorf("encode account %s: %w", id.ToRaw(), err)
			}
			if err := accounts.Put(accountKey(id), b); err != nil {
				return err
			}
		}
		return meta.Put(keyLT, binary.BigEndian.AppendUint64(nil, c.emu.LT()))
	})
}

func (c *Chain) load() error {
	accounts := map[ton.AccountID]tlb.ShardAccount{}
	var lt uint64
	err := c.db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			if v := meta.Get(keyLT); len(v) == 8 {
				lt = binary.BigEndian.Uint64(v)
			}
		}
		b := tx.Bucket(bucketAccounts)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) != 36 {
				return fmt.Errorf("bad account key %x", k)
			}
			id := ton.AccountID{Workchain: int32(binary.BigEndian.Uint32(k))}
			copy(id.Address[:], k[4:])
			cells, err := boc.DeserializeBoc(v)
			if err != nil || len(cells) != 1 {
				return fmt.Errorf("decode account %s: %w", id.ToRaw(), errors.Join(err, errors.New("want one root")))
			}
			var a tlb.ShardAccount
			if err := tlb.Unmarshal(cells[0], &a); err != nil {
				return fmt.Errorf("decode account %s: %w", id.ToRaw(), err)
			}
			accounts[id] = a
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("load local chain: %w", err)
	}
	if lt > 0 {
		c.emu.Restore(accounts, uint32(c.clock().Unix()), lt)
	}
	return nil
}

// backend adapts the emulated chain to chain.Backend under the chain's lock.
type backend struct{ c *Chain }

func (b backend) GetAccountState(_ context.Context, id ton.AccountID) (tlb.ShardAccount, error) {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	return b.c.emu.Account(id), nil
}

func (b backend) SendMessage(_ context.Context, payload []byte) (uint32, error) {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	_, err := b.c.run(func() (emu.Trace, error) { return b.c.emu.SendExternal(payload) })
	if err != nil {
		return 0, fmt.Errorf("local chain: %w", err)
	}
	return 0, nil
}

func (b backend) GetSeqno(ctx context.Context, id ton.AccountID) (uint32, error) {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	exit, stack, err := b.c.emu.RunGet(ctx, id, "seqno", tlb.VmStack{})
	if errors.Is(err, emu.ErrNotActive) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if exit != 0 || stack.Len() != 1 {
		return 0, fmt.Errorf("seqno of %s: exit code %d", id.ToRaw(), exit)
	}
	return uint32(stack.Peek(0).Int64()), nil
}
