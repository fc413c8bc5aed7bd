//go:build cgo

package emu

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"
)

func TestConfigRaisesGlobalVersion(t *testing.T) {
	require := require.New(t)
	cfg, err := Config()
	require.NoError(err)
	var params tlb.Hashmap[tlb.Uint32, tlb.Ref[boc.Cell]]
	require.NoError(tlb.Unmarshal(cfg, &params))
	p8, ok := params.Get(8)
	require.True(ok)
	require.NoError(p8.Value.ReadPrefix(8, 0xc4))
	v, err := p8.Value.ReadUint(32)
	require.NoError(err)
	assert.Equal(t, uint64(GlobalVersion), v)
	assert.Greater(t, len(params.Keys()), 20, "the other parameters are kept")
}

func TestTransfersAndBounces(t *testing.T) {
	a, b := ton.AccountID{Address: [32]byte{1}}, ton.AccountID{Address: [32]byte{2}}
	testCases := map[string]struct {
		bounce      bool
		wantTxs     int
		wantBGained bool
	}{
		// A bounceable message to an account without code comes back; a bounceless one stays.
		"bounceable to uninit": {bounce: true, wantTxs: 2},
		"bounceless to uninit": {bounce: false, wantTxs: 1, wantBGained: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			c, err := New(1_800_000_000)
			require.NoError(err)
			c.Mint(a, 10_000_000_000)
			assert.Equal(uint64(10_000_000_000), c.Balance(a))
			tr, err := c.Send(Internal(a, b, 1_000_000_000, tc.bounce, nil, nil))
			require.NoError(err)
			require.Len(tr, tc.wantTxs)
			assert.Equal(tc.wantBGained, c.Balance(b) > 0)
			assert.Greater(tr[0].InValue(), uint64(0))
			if tc.wantTxs == 2 {
				assert.True(tr[0].Bounced())
				assert.Equal(a, tr[1].Account)
			}
		})
	}
}

func TestRunGetAndExternalErrors(t *testing.T) {
	c, err := New(1_800_000_000)
	require.NoError(t, err)
	_, _, err = c.RunGet(context.Background(), ton.AccountID{}, "seqno", tlb.VmStack{})
	require.ErrorIs(t, err, ErrNotActive)
	_, err = c.SendExternal([]byte("junk"))
	require.Error(t, err)
	// An external message to an account that cannot pay for it is rejected, not included.
	dest := ton.AccountID{Address: [32]byte{3}}
	var m tlb.Message
	m.Info.SumType = "ExtInMsgInfo"
	m.Info.ExtInMsgInfo = &struct {
		Src, Dest tlb.MsgAddress
		ImportFee tlb.VarUInteger16
	}{Src: tlb.MsgAddress{SumType: "AddrNone"}, Dest: dest.ToMsgAddress()}
	_, err = c.Send(m)
	require.ErrorIs(t, err, ErrRejected)
}
