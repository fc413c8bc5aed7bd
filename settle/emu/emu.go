// Package emu is a small in-memory TON: it holds accounts and runs every message, and every
// message that message causes, through tongo's transaction emulator (the same C++ TVM that
// validators run, tongo's bundled libemulator) with a controllable clock.
//
// It is the engine under the local chain (settle/chain/local) and under the contract tests.
// It is not safe for concurrent use; callers serialize access.
//
// libemulator is loaded when the first chain is created, not when the process starts (lib.go
// says from where), so a binary that never runs the local chain neither loads nor needs it. A
// binary built without cgo has no emulator at all: New fails with an error naming the fix.
package emu

import (
	"context"
	"crypto/rand"
	_ "embed" // the blockchain config
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"
	"github.com/tonkeeper/tongo/utils"
)

// tongoConfig is tongo's bundled blockchain config (txemulator.DefaultConfig, a base64 BOC),
// copied because that package links libemulator into the binary; a test keeps the two equal.
//
//go:embed tongo-config.b64
var tongoConfig string

// maxTraceLength stops runaway message loops (a contract pinging another forever).
const maxTraceLength = 256

// ErrRejected is returned when an external message is not accepted by its account (bad
// signature, wrong seqno, not enough balance): on a real chain it would never be included.
var ErrRejected = errors.New("external message rejected")

// Chain is the emulated blockchain.
type Chain struct {
	em       *txEmulator
	accounts map[ton.AccountID]tlb.ShardAccount
	now      uint32
	lt       uint64
}

// New returns an empty chain whose clock starts at now (unix seconds).
func New(now uint32) (*Chain, error) {
	cfg, err := Config()
	if err != nil {
		return nil, err
	}
	b64, err := cfg.ToBocBase64()
	if err != nil {
		return nil, fmt.Errorf("encode emulator config: %w", err)
	}
	em, err := newTxEmulator(b64)
	if err != nil {
		return nil, err
	}
	return &Chain{em: em, accounts: map[ton.AccountID]tlb.ShardAccount{}, now: now, lt: 1_000_000}, nil
}

// Now is the chain clock.
func (c *Chain) Now() uint32 { return c.now }

// SetNow moves the chain clock (tests jump over close delays with it).
func (c *Chain) SetNow(now uint32) { c.now = now }

// LT is the last logical time used.
func (c *Chain) LT() uint64 { return c.lt }

// Accounts returns every known account (the map is the chain's own; do not modify it).
func (c *Chain) Accounts() map[ton.AccountID]tlb.ShardAccount { return c.accounts }

// SetAccount installs an account state directly, e.g. a contract with a prepared storage.
func (c *Chain) SetAccount(id ton.AccountID, a tlb.ShardAccount) { c.accounts[id] = a }

// Restore replaces the chain state, as loaded from storage.
func (c *Chain) Restore(accounts map[ton.AccountID]tlb.ShardAccount, now uint32, lt uint64) {
	c.accounts = accounts
	c.now = now
	c.lt = lt
}

// Account returns an account's state; an unknown account is AccountNone.
func (c *Chain) Account(id ton.AccountID) tlb.ShardAccount {
	if a, ok := c.accounts[id]; ok {
		return a
	}
	return tlb.ShardAccount{Account: tlb.Account{SumType: "AccountNone"}}
}

// Balance returns an account's balance in nanoTON (0 for unknown accounts).
func (c *Chain) Balance(id ton.AccountID) uint64 {
	a := c.Account(id)
	if a.Account.SumType != "Account" {
		return 0
	}
	return uint64(a.Account.Account.Storage.Balance.Grams)
}

// Mint adds nanoTON to an account out of thin air (the faucet). An unknown account becomes
// uninitialized with that balance, as if a bounceless transfer had arrived.
func (c *Chain) Mint(id ton.AccountID, amount uint64) {
	a := c.Account(id)
	if a.Account.SumType != "Account" {
		a = tlb.ShardAccount{Account: tlb.Account{SumType: "Account", Account: tlb.ExistedAccount{
			Addr:        id.ToMsgAddress(),
			StorageStat: tlb.StorageInfo{LastPaid: c.now, StorageExtra: tlb.StorageExtraInfo{SumType: "StorageExtraNone"}},
			Storage: tlb.AccountStorage{
				LastTransLt: c.lt,
				State:       tlb.AccountState{SumType: "AccountUninit"},
			},
		}}}
	}
	a.Account.Account.Storage.Balance.Grams += tlb.Grams(amount)
	c.accounts[id] = a
}

// GlobalVersion is the TVM version the emulated chain runs. tongo's bundled config says 10,
// but Tolk 1.x emits TVM 11+ instructions (INMSGPARAM and friends), which mainnet has run
// since 2025; the bundled libemulator implements them once the config allows it.
const GlobalVersion = 12

// Config is tongo's bundled blockchain config with the global version raised to GlobalVersion.
func Config() (*boc.Cell, error) {
	cells, err := boc.DeserializeBocBase64(strings.TrimSpace(tongoConfig))
	if err != nil || len(cells) != 1 {
		return nil, fmt.Errorf("decode emulator config: %w", errors.Join(err, errors.New("want one root")))
	}
	var params tlb.Hashmap[tlb.Uint32, tlb.Ref[boc.Cell]]
	if err := tlb.Unmarshal(cells[0], &params); err != nil {
		return nil, fmt.Errorf("decode emulator config: %w", err)
	}
	old, ok := params.Get(8)
	if !ok {
		return nil, errors.New("decode emulator config: no param 8")
	}
	if err := old.Value.ReadPrefix(8, 0xc4); err != nil {
		return nil, fmt.Errorf("decode emulator config param 8: %w", err)
	}
	if _, err := old.Value.ReadUint(32); err != nil {
		return nil, fmt.Errorf("decode emulator config param 8: %w", err)
	}
	capabilities, err := old.Value.ReadUint(64)
	if err != nil {
		return nil, fmt.Errorf("decode emulator config param 8: %w", err)
	}
	p8 := boc.NewCell()
	_ = p8.WriteUint(0xc4, 8)
	_ = p8.WriteUint(GlobalVersion, 32)
	_ = p8.WriteUint(capabilities, 64)
	params.Put(8, tlb.Ref[boc.Cell]{Value: *p8})
	out := boc.NewCell()
	if err := tlb.Marshal(out, params); err != nil {
		return nil, fmt.Errorf("encode emulator config: %w", err)
	}
	return out, nil
}

// Tx is one transaction of a trace.
type Tx struct {
	Account ton.AccountID
	Tx      tlb.Transaction
}

// ExitCode is the compute phase exit code (-1 when compute was skipped).
func (t Tx) ExitCode() int {
	d := t.Tx.Description
	if d.SumType != "TransOrd" || d.TransOrd.ComputePh.SumType != "TrPhaseComputeVm" {
		return -1
	}
	return int(d.TransOrd.ComputePh.TrPhaseComputeVm.Vm.ExitCode)
}

// Success reports whether compute and action phases both succeeded.
func (t Tx) Success() bool { return t.Tx.IsSuccess() }

// Bounced reports whether the transaction sent a bounce back to the sender.
func (t Tx) Bounced() bool {
	d := t.Tx.Description
	return d.SumType == "TransOrd" && d.TransOrd.Bounce.Exists && d.TransOrd.Bounce.Value.SumType == "TrPhaseBounceOk"
}

// Fees is the total fee the transaction charged its account.
func (t Tx) Fees() uint64 { return uint64(t.Tx.TotalFees.Grams) }

// InValue is the value of the incoming internal message (0 for external ones).
func (t Tx) InValue() uint64 {
	in := t.Tx.Msgs.InMsg
	if !in.Exists || in.Value.Value.Info.SumType != "IntMsgInfo" {
		return 0
	}
	return uint64(in.Value.Value.Info.IntMsgInfo.Value.Grams)
}

// Trace is every transaction a message caused, in execution order.
type Trace []Tx

// Failed returns the first transaction whose compute or action phase failed, if any.
func (tr Trace) Failed() (Tx, bool) {
	for _, t := range tr {
		if !t.Success() {
			return t, true
		}
	}
	return Tx{}, false
}

// Send runs msg and all messages it causes to completion (breadth first, like one shard).
func (c *Chain) Send(msg tlb.Message) (Trace, error) {
	queue := []tlb.Message{msg}
	var trace Trace
	for len(queue) > 0 {
		if len(trace) >= maxTraceLength {
			return trace, fmt.Errorf("emulate: trace longer than %d transactions", maxTraceLength)
		}
		m := queue[0]
		queue = queue[1:]
		dest, err := destination(m)
		if err != nil {
			return trace, err
		}
		if dest == nil {
			continue // external out messages (logs) leave the chain
		}
		c.lt += 1000
		if err := c.em.setClock(c.lt, c.now); err != nil {
			return trace, err
		}
		account, tx, err := c.emulate(*dest, m)
		if err != nil {
			return trace, err
		}
		c.accounts[*dest] = account
		if tx.Lt >= c.lt {
			c.lt = tx.Lt + 1
		}
		trace = append(trace, Tx{Account: *dest, Tx: tx})
		for _, out := range tx.Msgs.OutMsgs.Values() {
			queue = append(queue, out.Value)
		}
	}
	return trace, nil
}

// emulate runs one message on its destination account and returns the account after it and the
// transaction.
func (c *Chain) emulate(dest ton.AccountID, m tlb.Message) (tlb.ShardAccount, tlb.Transaction, error) {
	acc, err := toBase64(c.Account(dest))
	if err != nil {
		return tlb.ShardAccount{}, tlb.Transaction{}, fmt.Errorf("emulate message to %s: %w", dest.ToRaw(), err)
	}
	msg, err := toBase64(m)
	if err != nil {
		return tlb.ShardAccount{}, tlb.Transaction{}, fmt.Errorf("emulate message to %s: %w", dest.ToRaw(), err)
	}
	res, err := decodeJSON[emulation](c.em.emulate(acc, msg))
	if err != nil {
		return tlb.ShardAccount{}, tlb.Transaction{}, fmt.Errorf("emulate message to %s: %w", dest.ToRaw(), err)
	}
	if !res.Success {
		text := res.Error
		if text == "" {
			text = "no result"
		}
		if m.Info.SumType == "ExtInMsgInfo" {
			return tlb.ShardAccount{}, tlb.Transaction{}, fmt.Errorf("message to %s: %w: exit code %d: %s", dest.ToRaw(), ErrRejected, res.VMExitCode, text)
		}
		return tlb.ShardAccount{}, tlb.Transaction{}, fmt.Errorf("emulate message to %s: exit code %d: %s", dest.ToRaw(), res.VMExitCode, text)
	}
	var account tlb.ShardAccount
	var tx tlb.Transaction
	if err := fromBase64(res.ShardAccount, &account); err != nil {
		return tlb.ShardAccount{}, tlb.Transaction{}, fmt.Errorf("emulate message to %s: account: %w", dest.ToRaw(), err)
	}
	if err := fromBase64(res.Transaction, &tx); err != nil {
		return tlb.ShardAccount{}, tlb.Transaction{}, fmt.Errorf("emulate message to %s: transaction: %w", dest.ToRaw(), err)
	}
	return account, tx, nil
}

func toBase64(v any) (string, error) {
	c := boc.NewCell()
	if err := tlb.Marshal(c, v); err != nil {
		return "", err
	}
	return c.ToBocBase64()
}

func fromBase64(s string, v any) error {
	cells, err := boc.DeserializeBocBase64(s)
	if err != nil {
		return err
	}
	if len(cells) != 1 {
		return fmt.Errorf("%d roots, want one", len(cells))
	}
	return tlb.Unmarshal(cells[0], v)
}

// SendExternal decodes a BOC-encoded external message (what wallets produce) and runs it.
func (c *Chain) SendExternal(payload []byte) (Trace, error) {
	cells, err := boc.DeserializeBoc(payload)
	if err != nil || len(cells) != 1 {
		return nil, fmt.Errorf("decode external message: %w", errors.Join(err, errors.New("want one root")))
	}
	var m tlb.Message
	if err := tlb.Unmarshal(cells[0], &m); err != nil {
		return nil, fmt.Errorf("decode external message: %w", err)
	}
	if m.Info.SumType != "ExtInMsgInfo" {
		return nil, fmt.Errorf("decode external message: %s is not external", m.Info.SumType)
	}
	return c.Send(m)
}

// Internal builds an internal message as if src had sent it (tests and the faucet use it;
// real transfers go through wallet contracts).
func Internal(src, dest ton.AccountID, value uint64, bounce bool, body *boc.Cell, init *tlb.StateInit) tlb.Message {
	var m tlb.Message
	m.Info.SumType = "IntMsgInfo"
	m.Info.IntMsgInfo = &struct {
		IhrDisabled bool
		Bounce      bool
		Bounced     bool
		Src         tlb.MsgAddress
		Dest        tlb.MsgAddress
		Value       tlb.CurrencyCollection
		IhrFee      tlb.VarUInteger16
		FwdFee      tlb.Grams
		CreatedLt   uint64
		CreatedAt   uint32
	}{
		IhrDisabled: true,
		Bounce:      bounce,
		Src:         src.ToMsgAddress(),
		Dest:        dest.ToMsgAddress(),
		Value:       tlb.CurrencyCollection{Grams: tlb.Grams(value)},
		IhrFee:      tlb.VarUInteger16(*big.NewInt(0)),
	}
	if init != nil {
		m.Init.Exists = true
		m.Init.Value.Value = *init
	}
	if body != nil {
		m.Body.IsRight = true // in a ref: always fits, whatever the header size
		m.Body.Value = tlb.Any(*body)
	}
	return m
}

func destination(m tlb.Message) (*ton.AccountID, error) {
	switch m.Info.SumType {
	case "IntMsgInfo":
		return ton.AccountIDFromTlb(m.Info.IntMsgInfo.Dest)
	case "ExtInMsgInfo":
		return ton.AccountIDFromTlb(m.Info.ExtInMsgInfo.Dest)
	case "ExtOutMsgInfo":
		return nil, nil
	default:
		return nil, fmt.Errorf("emulate: unknown message type %q", m.Info.SumType)
	}
}

// ErrNotActive is returned by RunGet for accounts without code.
var ErrNotActive = errors.New("account is not active")

// RunGet runs a get-method of an active account and returns its exit code and stack.
func (c *Chain) RunGet(ctx context.Context, id ton.AccountID, method string, args tlb.VmStack) (uint32, tlb.VmStack, error) {
	a := c.Account(id)
	if a.Account.SumType != "Account" || a.Account.Account.Storage.State.SumType != "AccountActive" {
		return 0, tlb.VmStack{}, fmt.Errorf("run %s on %s: %w", method, id.ToRaw(), ErrNotActive)
	}
	init := a.Account.Account.Storage.State.AccountActive.StateInit
	code, data := init.Code.Value.Value, init.Data.Value.Value
	exit, stack, err := runGet(id, &code, &data, c.Balance(id), utils.MethodIdFromName(method), args)
	if err != nil {
		return 0, tlb.VmStack{}, fmt.Errorf("run %s on %s: %w", method, id.ToRaw(), err)
	}
	return exit, stack, nil
}

// runGet runs get-method id of a contract with the given code, data and balance. Like tongo's
// tvm package, whose behaviour the contract tests were written against, it runs at wall-clock
// time with a random seed.
func runGet(id ton.AccountID, code, data *boc.Cell, balance uint64, methodID int, args tlb.VmStack) (uint32, tlb.VmStack, error) {
	codeB64, err := code.ToBocBase64()
	if err != nil {
		return 0, tlb.VmStack{}, err
	}
	dataB64, err := data.ToBocBase64()
	if err != nil {
		return 0, tlb.VmStack{}, err
	}
	stackB64, err := toBase64(args)
	if err != nil {
		return 0, tlb.VmStack{}, err
	}
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	out, err := runGetMethod(codeB64, dataB64, id.ToRaw(), uint32(time.Now().Unix()), balance, hex.EncodeToString(seed[:]), methodID, stackB64)
	if err != nil {
		return 0, tlb.VmStack{}, err
	}
	res, err := decodeJSON[getResult](out)
	if err != nil {
		return 0, tlb.VmStack{}, err
	}
	if !res.Success {
		return 0, tlb.VmStack{}, fmt.Errorf("TVM emulation error: %s", res.Error)
	}
	var stack tlb.VmStack
	if err := fromBase64(res.Stack, &stack); err != nil {
		return 0, tlb.VmStack{}, fmt.Errorf("decode stack: %w", err)
	}
	return uint32(res.VMExitCode), stack, nil
}

// StateInitAddress is the address a contract with this code and data deploys to.
func StateInitAddress(workchain int32, code, data *boc.Cell) (ton.AccountID, *tlb.StateInit, error) {
	si := &tlb.StateInit{}
	si.Code.Exists = true
	si.Code.Value.Value = *code
	si.Data.Exists = true
	si.Data.Value.Value = *data
	c := boc.NewCell()
	if err := tlb.Marshal(c, si); err != nil {
		return ton.AccountID{}, nil, fmt.Errorf("encode state init: %w", err)
	}
	h, err := c.Hash256()
	if err != nil {
		return ton.AccountID{}, nil, fmt.Errorf("hash state init: %w", err)
	}
	return ton.AccountID{Workchain: workchain, Address: h}, si, nil
}
