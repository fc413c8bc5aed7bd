package tonchain

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/emu"
)

// maxAnswer bounds the fuzzed answers; a lite server's account state for these contracts is a
// few kilobytes per thousand parties.
const maxAnswer = 1 << 16

// answer is a lite server that answers every account query with the same bytes: the BOC of an
// Account cell, decoded as liteapi decodes it (with tongo's parser, which may panic: the chain's
// guarded backend must turn that into an error).
type answer []byte

func (a answer) GetAccountState(context.Context, ton.AccountID) (tlb.ShardAccount, error) {
	cells, err := boc.DeserializeBoc(a)
	if err != nil {
		return tlb.ShardAccount{}, err
	}
	if len(cells) != 1 {
		return tlb.ShardAccount{}, errors.New("want one root cell")
	}
	var acc tlb.Account
	if err := tlb.Unmarshal(cells[0], &acc); err != nil {
		return tlb.ShardAccount{}, err
	}
	return tlb.ShardAccount{Account: acc}, nil
}

func (answer) SendMessage(context.Context, []byte) (uint32, error) { return 0, errors.New("read only") }
func (answer) GetSeqno(context.Context, ton.AccountID) (uint32, error) {
	return 0, errors.New("read only")
}

// recordedAnswers are the account states a lite server gives for a registry, a proxy contract
// with a client and a worker, and a wallet, as recorded from the emulated chain.
func recordedAnswers(t testing.TB) [][]byte {
	ctx := context.Background()
	e, err := emu.New(uint32(time.Now().Unix()))
	require.NoError(t, err)
	c, err := New(&recorder{chain: e}, Testnet)
	require.NoError(t, err)
	owner, client, payment := ed25519.NewKeyFromSeed(make([]byte, 32)), ed25519.NewKeyFromSeed(append(make([]byte, 31), 3)), ed25519.NewKeyFromSeed(append(make([]byte, 31), 9))
	ownerAddr, err := c.WalletAddress(owner.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	clientAddr, err := c.WalletAddress(client.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	e.Mint(ownerAddr, 100*ton1)
	e.Mint(clientAddr, 100*ton1)
	params := contracts.DefaultParams()
	reg, err := chain.DeployRegistry(ctx, c, owner, contracts.Registry{Params: params}, ton1)
	require.NoError(t, err)
	cfg := contracts.ProxyConfig{Registry: reg, MinClientStake: params.MinClientStake, ClientCloseDelay: params.ClientCloseDelay, ProxyCloseDelay: params.ProxyCloseDelay}
	proxy, err := chain.DeployProxy(ctx, c, owner, payment.Public().(ed25519.PublicKey), cfg, params.MinProxyStake+contracts.OpFee)
	require.NoError(t, err)
	require.NoError(t, chain.TopUp(ctx, c, client, proxy, 5*ton1))
	s, err := settle.Sign(settle.State{Proxy: proxy, Party: clientAddr, Kind: settle.KindClientCharged, Seqno: 1, Total: ton1}, payment)
	require.NoError(t, err)
	require.NoError(t, chain.SubmitState(ctx, c, owner, s))
	s, err = settle.Sign(settle.State{Proxy: proxy, Party: ownerAddr, Kind: settle.KindWorkerEarned, Seqno: 1, Total: ton1 / 2}, payment)
	require.NoError(t, err)
	require.NoError(t, chain.SubmitState(ctx, c, owner, s))
	p, err := chain.Proxy(ctx, c, proxy)
	require.NoError(t, err)
	require.Len(t, p.Clients, 1)
	require.Len(t, p.Workers, 1)

	var out [][]byte
	for _, id := range []ton.AccountID{reg, proxy, ownerAddr} {
		cell := boc.NewCell()
		require.NoError(t, tlb.Marshal(cell, e.Account(id).Account))
		b, err := cell.ToBoc()
		require.NoError(t, err)
		out = append(out, b)
	}
	return out
}

// FuzzLiteServerAccount: whatever bytes a lite server sends as an account state, reading it as
// an account, a balance, a registry or a proxy contract returns a value or an error, never a
// panic; what parses as a proxy contract carries a whole payment key.
func FuzzLiteServerAccount(f *testing.F) {
	for _, b := range recordedAnswers(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > maxAnswer {
			return
		}
		ctx := context.Background()
		c, err := New(answer(raw), Mainnet)
		require.NoError(t, err)
		id := ton.AccountID{Address: [32]byte{1}}
		_, _ = c.Account(ctx, id)
		_, _ = chain.Balance(ctx, c, id)
		_, _ = chain.Registry(ctx, c, id)
		if p, err := chain.Proxy(ctx, c, id); err == nil {
			require.Len(t, p.Key, ed25519.PublicKeySize)
		}
	})
}

// TestRecordedAnswersParse: the fuzzer's seeds are real answers, which parse.
func TestRecordedAnswersParse(t *testing.T) {
	require := require.New(t)
	ctx := context.Background()
	seeds := recordedAnswers(t)
	c, err := New(answer(seeds[0]), Mainnet)
	require.NoError(err)
	r, err := chain.Registry(ctx, c, ton.AccountID{})
	require.NoError(err)
	require.Equal(contracts.DefaultParams(), r.Params)
	c, err = New(answer(seeds[1]), Mainnet)
	require.NoError(err)
	p, err := chain.Proxy(ctx, c, ton.AccountID{})
	require.NoError(err)
	require.Len(p.Clients, 1)
	// A panic in the backend is an error, not a crash.
	c, err = New(panicky{}, Mainnet)
	require.NoError(err)
	_, err = c.Account(ctx, ton.AccountID{})
	require.ErrorContains(err, "malformed lite server answer")
}

type panicky struct{ answer }

func (panicky) GetAccountState(context.Context, ton.AccountID) (tlb.ShardAccount, error) {
	panic("index out of range")
}
