package paystate

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
)

func TestAcceptOnlyForward(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, forger, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	me := ton.AccountID{Address: [32]byte{1}}
	other := ton.AccountID{Address: [32]byte{2}}
	proxy := ton.AccountID{Address: [32]byte{9}}
	state := func(k ed25519.PrivateKey, party ton.AccountID, kind settle.Kind, seqno, total uint64) []byte {
		st, err := settle.Sign(settle.State{Proxy: proxy, Party: party, Kind: kind, Seqno: seqno, Total: total}, k)
		require.NoError(t, err)
		b, err := st.MarshalBinary()
		require.NoError(t, err)
		return b
	}
	dir := t.TempDir()
	s, err := Open(dir, settle.KindWorkerEarned, me)
	require.NoError(t, err)
	_, err = s.Accept(pub, state(key, me, settle.KindWorkerEarned, 5, 500))
	require.NoError(t, err)

	testCases := map[string]struct {
		raw     []byte
		wantErr error
	}{
		"replayed":      {raw: state(key, me, settle.KindWorkerEarned, 5, 500), wantErr: ErrReplay},
		"older":         {raw: state(key, me, settle.KindWorkerEarned, 4, 400), wantErr: ErrReplay},
		"lower total":   {raw: state(key, me, settle.KindWorkerEarned, 6, 499), wantErr: ErrReplay},
		"forged":        {raw: state(forger, me, settle.KindWorkerEarned, 6, 600), wantErr: ErrForged},
		"another party": {raw: state(key, other, settle.KindWorkerEarned, 6, 600), wantErr: ErrNotOurs},
		"another kind":  {raw: state(key, me, settle.KindClientCharged, 6, 600), wantErr: ErrNotOurs},
		"garbage":       {raw: []byte("not a state"), wantErr: settle.ErrMalformedState},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			_, err := s.Accept(pub, tc.raw)
			assert.ErrorIs(t, err, tc.wantErr)
			latest, ok := s.Latest(pub)
			require.True(t, ok)
			assert.Equal(t, uint64(5), latest.State.Seqno, "a refused state changes nothing")
		})
	}

	_, err = s.Accept(pub, state(key, me, settle.KindWorkerEarned, 6, 600))
	require.NoError(t, err)
	again, err := Open(dir, settle.KindWorkerEarned, me)
	require.NoError(t, err)
	latest, ok := again.Latest(pub)
	require.True(t, ok, "kept across restarts")
	assert.Equal(t, uint64(600), latest.State.Total)
}
