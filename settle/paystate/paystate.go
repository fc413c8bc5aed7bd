// Package paystate keeps the latest payment state a proxy signed for this node (a client's
// "charged" total or a worker's "earned" total), one per proxy payment key, durably in the data
// directory. A state is accepted only when it verifies under the proxy's attested payment key,
// names the expected kind and party, and moves forward (higher sequence number, total not lower),
// so a replayed or forged state never replaces a good one.
package paystate

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/config/atomicfile"
	"github.com/cocoon-network/cocoon/settle"
)

// Refusal classes.
var (
	ErrForged  = errors.New("payment state not signed by the proxy's payment key")
	ErrReplay  = errors.New("payment state does not move forward")
	ErrNotOurs = errors.New("payment state is for another party or kind")
)

// Store holds the latest state per proxy payment key.
type Store struct {
	dir   string
	kind  settle.Kind
	party ton.AccountID

	mu     sync.Mutex
	latest map[string]settle.SignedState
	reader Reader
}

// Open loads the states kept in dir for party's totals of kind.
func Open(dir string, kind settle.Kind, party ton.AccountID) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("payment states: %w", err)
	}
	s := &Store{dir: dir, kind: kind, party: party, latest: map[string]settle.SignedState{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("payment states: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if filepath.Ext(name) != ".state" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("payment states: %w", err)
		}
		st, err := settle.ParseSignedState(b)
		if err != nil {
			return nil, fmt.Errorf("payment state %s: %w", name, err)
		}
		s.latest[name[:len(name)-len(".state")]] = st
	}
	return s, nil
}

// Accept checks raw against proxyKey and keeps it when it moves forward.
func (s *Store) Accept(proxyKey ed25519.PublicKey, raw []byte) (settle.SignedState, error) {
	st, err := settle.ParseSignedState(raw)
	if err != nil {
		return st, err
	}
	if err := st.Verify(proxyKey); err != nil {
		return st, fmt.Errorf("%w: %v", ErrForged, err)
	}
	if st.State.Kind != s.kind || st.State.Party != s.party {
		return st, fmt.Errorf("%w: %s for %s", ErrNotOurs, st.State.Kind, st.State.Party.ToRaw())
	}
	id := hex.EncodeToString(proxyKey)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.latest[id]; ok && (st.State.Seqno <= old.State.Seqno || st.State.Total < old.State.Total) {
		return st, fmt.Errorf("%w: seqno %d total %d after seqno %d total %d", ErrReplay,
			st.State.Seqno, st.State.Total, old.State.Seqno, old.State.Total)
	}
	if err := atomicfile.Write(filepath.Join(s.dir, id+".state"), raw, 0o600); err != nil {
		return st, fmt.Errorf("save payment state: %w", err)
	}
	s.latest[id] = st
	return st, nil
}

// Latest is the newest state held from proxyKey.
func (s *Store) Latest(proxyKey ed25519.PublicKey) (settle.SignedState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.latest[hex.EncodeToString(proxyKey)]
	return st, ok
}

// All returns every state held, by proxy key (hex).
func (s *Store) All() map[string]settle.SignedState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]settle.SignedState, len(s.latest))
	for k, v := range s.latest {
		out[k] = v
	}
	return out
}

// Account is what a proxy contract holds for this party on chain.
type Account struct {
	Balance uint64 `json:"balance"` // clients: deposit left
	Stake   uint64 `json:"stake"`   // clients: locked stake
	Settled uint64 `json:"settled"` // clients: charged on chain; workers: paid on chain
}

// Reader reads this party's account in a proxy contract.
type Reader func(ctx context.Context, proxy ton.AccountID) (Account, error)

// SetReader lets the store report on-chain balances (nil: none).
func (s *Store) SetReader(r Reader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reader = r
}

// Account reads the party's account in proxy's contract; ok is false without a reader.
func (s *Store) Account(ctx context.Context, proxy ton.AccountID) (Account, bool, error) {
	s.mu.Lock()
	r := s.reader
	s.mu.Unlock()
	if r == nil {
		return Account{}, false, nil
	}
	a, err := r(ctx, proxy)
	return a, true, err
}
