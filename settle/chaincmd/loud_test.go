package chaincmd

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// bouncing is a chain whose wallets send every message as a plain transfer: the contract runs a
// transaction that does not do the operation, as when it refuses one, and the TON comes back
// less the fees or stays.
type bouncing struct{ chain.Chain }

func (b bouncing) Send(ctx context.Context, key ed25519.PrivateKey, msgs ...chain.Message) error {
	plain := make([]chain.Message, len(msgs))
	for i, m := range msgs {
		plain[i] = chain.Message{To: m.To, Amount: m.Amount}
	}
	return b.Chain.Send(ctx, key, plain...)
}

// moneyNet is a registry and a proxy contract on a fresh local chain, with funded wallets.
type moneyNet struct {
	ch                     *local.Chain
	owner, operator, party ed25519.PrivateKey
	poor                   ed25519.PrivateKey
	pay                    ed25519.PrivateKey
	registry, proxy        ton.AccountID
}

func newMoneyNet(t *testing.T, params contracts.RegistryParams) *moneyNet {
	require := require.New(t)
	ctx := t.Context()
	ch, err := local.Open(filepath.Join(t.TempDir(), local.DefaultFile), local.Options{})
	require.NoError(err)
	t.Cleanup(func() { _ = ch.Close() })
	key := func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(nil)
		require.NoError(err)
		return k
	}
	n := &moneyNet{ch: ch, owner: key(), operator: key(), party: key(), poor: key(), pay: key()}
	for _, k := range []ed25519.PrivateKey{n.owner, n.operator, n.party} {
		require.NoError(Fund(ctx, ch, io.Discard, k.Public().(ed25519.PublicKey), 100*1_000_000_000))
	}
	n.registry, err = DeployRegistry(ctx, ch, io.Discard, n.owner, params, 1_000_000_000)
	require.NoError(err)
	n.proxy, err = DeployProxy(ctx, ch, io.Discard, n.operator, n.registry, n.pay.Public().(ed25519.PublicKey), params.MinProxyStake+contracts.OpFee)
	require.NoError(err)
	return n
}

// TestBouncedOperationsAreErrors: every operation of `cocoon chain` that sends to a contract
// reports, when the contract does not do it, an error saying so (chain.ErrBounced or the
// contract's own numbers), never success.
func TestBouncedOperationsAreErrors(t *testing.T) {
	params := contracts.DefaultParams()
	params.ClientCloseDelay = 0
	n := newMoneyNet(t, params)
	ctx := t.Context()
	require.NoError(t, TopUp(ctx, n.ch, io.Discard, n.party, n.proxy, 2_000_000_000))
	b := bouncing{n.ch}
	zero := [32]byte{}
	earned, err := settle.Sign(settle.State{Proxy: n.proxy, Party: addrOf(t, n.ch, n.party), Kind: settle.KindWorkerEarned, Seqno: 1, Total: 1000}, n.pay)
	require.NoError(t, err)
	state, err := earned.MarshalBinary()
	require.NoError(t, err)
	testCases := map[string]func() error{
		"set params": func() error { return SetParams(ctx, b, io.Discard, n.owner, n.registry, params) },
		"allow":      func() error { return Allow(ctx, b, io.Discard, n.owner, n.registry, contracts.ListModels, zero, true) },
		"set proxy": func() error {
			return SetProxy(ctx, b, io.Discard, n.owner, n.registry, n.pay.Public().(ed25519.PublicKey),
				&contracts.ProxyEntry{Key: n.pay.Public().(ed25519.PublicKey), Contract: n.proxy, WorkerEndpoint: "a:1", ClientEndpoint: "a:1"})
		},
		"top up":   func() error { return TopUp(ctx, b, io.Discard, n.party, n.proxy, 1_000_000_000) },
		"withdraw": func() error { return Withdraw(ctx, b, io.Discard, n.party, n.proxy) },
		"deploy proxy": func() error {
			_, err := DeployProxy(ctx, b, io.Discard, n.party, n.registry, n.pay.Public().(ed25519.PublicKey), params.MinProxyStake+contracts.OpFee)
			return err
		},
		"deploy registry": func() error {
			p := params
			p.PricePerToken++ // another address than the registry already there
			_, err := DeployRegistry(ctx, b, io.Discard, n.party, p, 1_000_000_000)
			return err
		},
		"payout": func() error { return Payout(ctx, b, io.Discard, n.operator, state) },
	}
	for name, op := range testCases {
		t.Run(name, func(t *testing.T) {
			err := op()
			require.Error(t, err)
			assert.Regexp(t, "refused by the contract|did not start|kept seqno", err.Error())
			if errors.Is(err, chain.ErrBounced) && name != "deploy registry" && name != "deploy proxy" {
				assert.Contains(t, err.Error(), "by the contract's rules", "a bounce says what the rules say now")
			}
		})
	}
}

// racing is bouncing with something done on the chain first, as if it landed between the check
// before sending and the send.
type racing struct {
	bouncing
	first func() error
}

func (r racing) Send(ctx context.Context, key ed25519.PrivateKey, msgs ...chain.Message) error {
	if err := r.first(); err != nil {
		return err
	}
	return r.bouncing.Send(ctx, key, msgs...)
}

// TestBounceSaysTheCause: a deposit the contract bounces because the account began closing after
// the check says so, by the contract's rules applied to the state now.
func TestBounceSaysTheCause(t *testing.T) {
	n := newMoneyNet(t, contracts.DefaultParams())
	ctx := t.Context()
	require.NoError(t, TopUp(ctx, n.ch, io.Discard, n.party, n.proxy, 2_000_000_000))
	closeFirst := racing{bouncing{n.ch}, func() error { return Withdraw(ctx, n.ch, io.Discard, n.party, n.proxy) }}
	err := TopUp(ctx, closeFirst, io.Discard, n.party, n.proxy, 1_000_000_000)
	require.ErrorIs(t, err, chain.ErrBounced)
	assert.ErrorContains(t, err, "; by the contract's rules: refused: the account of ")
	assert.ErrorContains(t, err, "is closing and takes no deposits")
}

func addrOf(t *testing.T, ch chain.Chain, k ed25519.PrivateKey) ton.AccountID {
	a, err := ch.WalletAddress(k.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	return a
}

// TestRefusedBeforeSending: what the contract would bounce, or the wallet cannot pay, is refused
// with nothing sent (no fee lost), naming the fix.
func TestRefusedBeforeSending(t *testing.T) {
	params := contracts.DefaultParams()
	params.ClientCloseDelay = 3600
	n := newMoneyNet(t, params)
	ctx := t.Context()
	require.NoError(t, TopUp(ctx, n.ch, io.Discard, n.party, n.proxy, 2_000_000_000))
	require.NoError(t, Withdraw(ctx, n.ch, io.Discard, n.party, n.proxy))
	require.NoError(t, Fund(ctx, n.ch, io.Discard, n.poor.Public().(ed25519.PublicKey), 500_000_000))
	testCases := map[string]struct {
		op   func() error
		want string
	}{
		"top-up below the stake": {func() error { return TopUp(ctx, n.ch, io.Discard, n.operator, n.proxy, 500_000_000) }, "min_client_stake"},
		"top-up beyond the wallet": {func() error { return TopUp(ctx, n.ch, io.Discard, n.poor, n.proxy, 2_000_000_000) },
			"holds 0.5 TON, and this sends 2 TON"},
		"withdraw-stake in the delay": {func() error { return WithdrawStake(ctx, n.ch, io.Discard, n.party, n.proxy) }, "the close delay runs until"},
		"withdraw twice":              {func() error { return Withdraw(ctx, n.ch, io.Discard, n.party, n.proxy) }, "already closing"},
		"registry by another":         {func() error { return SetParams(ctx, n.ch, io.Discard, n.party, n.registry, params) }, "only its owner"},
		"proxy stake too small": {func() error {
			_, err := DeployProxy(ctx, n.ch, io.Discard, n.party, n.registry, n.party.Public().(ed25519.PublicKey), 1)
			return err
		}, "below the registry minimum"},
		"payout from an empty wallet": {func() error {
			s, err := settle.Sign(settle.State{Proxy: n.proxy, Party: addrOf(t, n.ch, n.party), Kind: settle.KindWorkerEarned, Seqno: 1, Total: 1}, n.pay)
			require.NoError(t, err)
			raw, err := s.MarshalBinary()
			require.NoError(t, err)
			_, empty, err := ed25519.GenerateKey(nil)
			require.NoError(t, err)
			return Payout(ctx, n.ch, io.Discard, empty, raw)
		}, "fund the wallet first"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			before, err := chain.Balance(ctx, n.ch, n.proxy)
			require.NoError(t, err)
			err = tc.op()
			require.ErrorIs(t, err, chain.ErrRefused)
			assert.ErrorContains(t, err, tc.want)
			after, err := chain.Balance(ctx, n.ch, n.proxy)
			require.NoError(t, err)
			assert.Equal(t, before, after, "nothing reached the contract")
		})
	}
	// The command exits non-zero with the reason, having sent nothing.
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "k.key")
	_, err := runChain(ctx, "key", "new", keyPath)
	require.NoError(t, err)
	_, err = runChain(ctx, "--chain-data", filepath.Join(dir, local.DefaultFile), "fund", "--key", keyPath, "0.5")
	require.NoError(t, err)
	out, err := runChain(ctx, "client", "top-up", "--chain-data", filepath.Join(dir, local.DefaultFile), "--key", keyPath, n.proxy.ToRaw(), "2")
	assert.Equal(t, 1, chainExitCode(err), out)
	assert.ErrorContains(t, err, "holds 0.5 TON, and this sends 2 TON plus about 0.01 TON of fees; fund the wallet first")
}

// TestReadWhileServed: while `cocoon chain serve` holds the local chain file, reading commands on
// that file go through the URL it recorded beside it; once it stops, the record is gone.
func TestReadWhileServed(t *testing.T) {
	require := require.New(t)
	assert := assert.New(t)
	data := t.TempDir()
	keyPath := filepath.Join(data, "k.key")
	_, err := runChain(t.Context(), "key", "new", keyPath)
	require.NoError(err)
	_, err = runChain(t.Context(), "--data", data, "--chain-data", filepath.Join(data, local.DefaultFile), "fund", "--key", keyPath, "3")
	require.NoError(err)
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() {
		_, err := runChain(ctx, "serve", "--data", data, "--listen", "127.0.0.1:0")
		served <- err
	}()
	chainFile := filepath.Join(data, local.DefaultFile)
	require.Eventually(func() bool { return local.ServedURL(chainFile) != "" }, 10*time.Second, 10*time.Millisecond)

	start := time.Now()
	out, err := runChain(t.Context(), "balance", "--data", data, "--key", keyPath)
	require.NoError(err, out)
	assert.Contains(out, "balance 3 TON")
	assert.Contains(out, "using the chain it serves at "+local.ServedURL(chainFile))
	assert.Less(time.Since(start), 4*time.Second, "no wait for the file lock")
	out, err = runChain(t.Context(), "proxy", "show", "--data", data, "0:"+hex.EncodeToString(make([]byte, 32)))
	assert.Equal(1, chainExitCode(err), out)
	assert.ErrorContains(err, "not deployed", "read through the serve, not refused as locked")

	cancel()
	require.NoError(<-served)
	_, err = os.Stat(local.URLFile(chainFile))
	assert.ErrorIs(err, os.ErrNotExist, "the record goes with the serve")
	out, err = runChain(t.Context(), "balance", "--data", data, "--key", keyPath)
	require.NoError(err, out)
	assert.False(strings.Contains(out, "serves at"), out)
}
