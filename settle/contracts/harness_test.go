package contracts_test

import (
	"context"
	"crypto/ed25519"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/emu"
)

const (
	ton1  = 1_000_000_000
	start = 1_800_000_000
)

// env is an emulated chain with funded plain accounts standing in for wallets.
type env struct {
	t     testing.TB
	chain *emu.Chain
}

func newEnv(t testing.TB) *env {
	t.Helper()
	c, err := emu.New(start)
	require.NoError(t, err)
	return &env{t: t, chain: c}
}

func account(n byte) ton.AccountID {
	return ton.AccountID{Workchain: 0, Address: [32]byte{0xAA, n}}
}

// user returns a funded account.
func (e *env) user(n byte) ton.AccountID {
	id := account(n)
	e.chain.Mint(id, 1000*ton1)
	return id
}

// send delivers an internal message from `from` (bounceable) and returns the transaction
// on `to` plus the whole trace.
func (e *env) send(from, to ton.AccountID, value uint64, body *boc.Cell) (emu.Tx, emu.Trace) {
	e.t.Helper()
	tr, err := e.chain.Send(emu.Internal(from, to, value, true, body, nil))
	require.NoError(e.t, err)
	require.NotEmpty(e.t, tr)
	require.Equal(e.t, to, tr[0].Account)
	return tr[0], tr
}

func (e *env) deploy(from ton.AccountID, code, data *boc.Cell, value uint64, body *boc.Cell) ton.AccountID {
	e.t.Helper()
	addr, init, err := emu.StateInitAddress(0, code, data)
	require.NoError(e.t, err)
	tr, err := e.chain.Send(emu.Internal(from, addr, value, false, body, init))
	require.NoError(e.t, err)
	require.True(e.t, tr[0].Success(), "deploy exit code %d", tr[0].ExitCode())
	return addr
}

func (e *env) data(id ton.AccountID) *boc.Cell {
	e.t.Helper()
	a := e.chain.Account(id)
	require.Equal(e.t, "AccountActive", string(a.Account.Account.Storage.State.SumType))
	d := a.Account.Account.Storage.State.AccountActive.StateInit.Data.Value.Value
	return &d
}

func (e *env) registry(id ton.AccountID) contracts.Registry {
	e.t.Helper()
	r, err := contracts.ParseRegistryData(e.data(id))
	require.NoError(e.t, err)
	return r
}

func (e *env) proxy(id ton.AccountID) contracts.ProxyState {
	e.t.Helper()
	p, err := contracts.ParseProxyData(e.data(id))
	require.NoError(e.t, err)
	return p
}

// get runs a get-method and returns its results in declaration order.
func (e *env) get(id ton.AccountID, method string, args ...tlb.VmStackValue) []tlb.VmStackValue {
	e.t.Helper()
	var in tlb.VmStack
	for _, a := range args {
		in.Put(a)
	}
	exit, stack, err := e.chain.RunGet(context.Background(), id, method, in)
	require.NoError(e.t, err)
	require.Zero(e.t, exit, "get-method %s exit code", method)
	out := make([]tlb.VmStackValue, stack.Len())
	for i := range out {
		out[i] = stack.PeekBottom(i)
	}
	return out
}

func keyArg(k []byte) tlb.VmStackValue {
	return tlb.VmStackValue{SumType: "VmStkInt", VmStkInt: tlb.Int257(*new(big.Int).SetBytes(k))}
}

func addrArg(t *testing.T, id ton.AccountID) tlb.VmStackValue {
	c := boc.NewCell()
	require.NoError(t, tlb.Marshal(c, id.ToMsgAddress()))
	v, err := tlb.CellToVmCellSlice(c)
	require.NoError(t, err)
	return v
}

func testKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}
