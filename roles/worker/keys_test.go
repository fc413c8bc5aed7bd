package worker

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/scripted"
)

// The proxy reads the worker's HPKE public key from its verified claims, and the worker holds the
// private half for that connection: requests sealed to the key can be opened here and only here.
func TestWorkerClaimsHPKEKey(t *testing.T) {
	require := require.New(t)
	eng := scripted.New(scripted.Config{Model: "test-model"})
	t.Cleanup(eng.Close)
	e, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: eng.URL})
	require.NoError(err)
	tc := tconfig(t, attest.RoleWorker)
	_, c := startWorkerWith(t, newStubProxy(t), e, 1, tc)

	pub := c.Peer().Claims.HPKEKey
	require.Len(pub, attest.HPKEKeySize)
	priv, ok := tc.Identity.HPKEKey(pub)
	require.True(ok)
	require.Equal(pub, priv.PublicKey().Bytes())
}
