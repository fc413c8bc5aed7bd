package main

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/ledger"
)

type demoLedger struct {
	*ledger.Ledger
}

func (d demoLedger) close() { _ = d.Ledger.Close() }

// openDemoLedger opens the demo proxy's ledger after the demo exited (bbolt locks it while open).
func openDemoLedger(data string) (demoLedger, error) {
	key, err := chain.LoadKey(filepath.Join(data, "keys", "proxy-payment.key"))
	if err != nil {
		return demoLedger{}, err
	}
	st := heldAny(data)
	l, err := ledger.Open(filepath.Join(data, "proxy-ledger.db"), st.State.Proxy, key, ledger.Options{})
	return demoLedger{l}, err
}

func heldAny(data string) settle.SignedState {
	for _, dir := range []string{"client-states", "worker-states"} {
		entries, _ := os.ReadDir(filepath.Join(data, dir))
		for _, e := range entries {
			if b, err := os.ReadFile(filepath.Join(data, dir, e.Name())); err == nil {
				if st, err := settle.ParseSignedState(b); err == nil {
					return st
				}
			}
		}
	}
	return settle.SignedState{}
}

// heldStates reads the latest states the client and worker keep, verified with the payment key.
func heldStates(t *testing.T, data string) (client, worker []settle.SignedState) {
	key, err := chain.LoadKey(filepath.Join(data, "keys", "proxy-payment.key"))
	require.NoError(t, err)
	read := func(dir string) []settle.SignedState {
		var out []settle.SignedState
		entries, err := os.ReadDir(filepath.Join(data, dir))
		require.NoError(t, err)
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".state") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(data, dir, e.Name()))
			require.NoError(t, err)
			st, err := settle.ParseSignedState(b)
			require.NoError(t, err)
			require.NoError(t, st.Verify(key.Public().(ed25519.PublicKey)))
			out = append(out, st)
		}
		return out
	}
	return read("client-states"), read("worker-states")
}
