package tonchain

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"
	"github.com/tonkeeper/tongo/tontest"
	"github.com/tonkeeper/tongo/wallet"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// TestSubmitStateWithTongoMock checks, against tongo's own wallet mock, that submitting a
// worker's signed state produces one external message signed by the worker's key for its
// v5 wallet, carrying exactly one bounceable SubmitState to the proxy contract.
func TestSubmitStateWithTongoMock(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	ctx := context.Background()
	workerKey := ed25519.NewKeyFromSeed(append(make([]byte, 31), 4))
	payment := ed25519.NewKeyFromSeed(append(make([]byte, 31), 9))
	probe, err := New(&recorder{}, Testnet)
	require.NoError(err)
	workerAddr, err := probe.WalletAddress(workerKey.Public().(ed25519.PublicKey))
	require.NoError(err)

	state := tontest.Account().Address(workerAddr).Balance(2_000_000_000).State(tlb.AccountUninit).MustShardAccount()
	mock, sent := wallet.NewMockBlockchain(0, state)
	c, err := New(mock, Testnet)
	require.NoError(err)

	proxy := ton.AccountID{Address: [32]byte{0x77}}
	s, err := settle.Sign(settle.State{Proxy: proxy, Party: workerAddr, Kind: settle.KindWorkerEarned, Seqno: 3, Total: 42}, payment)
	require.NoError(err)
	require.NoError(chain.SubmitState(ctx, c, workerKey, s))

	require.Len(sent, 1)
	cells, err := boc.DeserializeBoc(<-sent)
	require.NoError(err)
	ext := cells[0]
	require.NoError(wallet.VerifySignature(wallet.V5R1, ext, workerKey.Public().(ed25519.PublicKey)))
	ext.ResetCounters()
	require.Error(wallet.VerifySignature(wallet.V5R1, ext, payment.Public().(ed25519.PublicKey)), "only the wallet key signs")
	ext.ResetCounters()
	var m tlb.Message
	require.NoError(tlb.Unmarshal(ext, &m))
	require.Equal("ExtInMsgInfo", string(m.Info.SumType))
	dest, err := ton.AccountIDFromTlb(m.Info.ExtInMsgInfo.Dest)
	require.NoError(err)
	assert.Equal(workerAddr, *dest)
	assert.True(m.Init.Exists, "the first message deploys the wallet")

	ext.ResetCounters()
	raw, err := wallet.ExtractRawMessages(wallet.V5R1, ext)
	require.NoError(err)
	require.Len(raw, 1)
	var in tlb.Message
	require.NoError(tlb.Unmarshal(raw[0].Message, &in))
	info := in.Info.IntMsgInfo
	require.NotNil(info)
	to, err := ton.AccountIDFromTlb(info.Dest)
	require.NoError(err)
	assert.Equal(proxy, *to)
	assert.True(info.Bounce, "a refused state must come back")
	assert.Equal(tlb.Grams(chain.GasAmount), info.Value.Grams)
	body := boc.Cell(in.Body.Value)
	want, err := contracts.SubmitStateBody(3, s)
	require.NoError(err)
	wantHash, err := want.Hash256()
	require.NoError(err)
	gotHash, err := body.Hash256()
	require.NoError(err)
	assert.Equal(wantHash, gotHash)
}
