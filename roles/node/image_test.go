package node

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/sim"
	"github.com/cocoon-network/cocoon/config"
)

// TestSimulatedImageHashSameAcrossRuns: one binary with one measured configuration presents one
// image hash, whatever its ports, peers, state directory and secrets; a measured field changes it.
// The hash is the one Transport puts in the simulated quote.
func TestSimulatedImageHashSameAcrossRuns(t *testing.T) {
	base := func(data string) config.Config {
		c := LoopbackConfig(data, "info")
		c.Worker.Proxies, c.Client.Proxies = []string{"127.0.0.1:4433"}, []string{"127.0.0.1:4433"}
		return c
	}
	testCases := map[string]struct {
		role   attest.Role
		mutate func(*config.Config)
		same   bool
	}{
		"worker elsewhere": {role: attest.RoleWorker, same: true, mutate: func(c *config.Config) {
			c.Worker.Proxies, c.Worker.StatsListen = []string{"127.0.0.1:50123", "10.1.1.1:4433"}, "127.0.0.1:50124"
			c.Worker.EngineAPIKey, c.Payments.Key = "secret", "/elsewhere/key"
		}},
		"proxy elsewhere": {role: attest.RoleProxy, same: true, mutate: func(c *config.Config) {
			c.Proxy.Listen, c.Proxy.StatsListen, c.Proxy.StatsToken = "0.0.0.0:50125", "127.0.0.1:50126", "0123456789abcdef"
		}},
		"worker model":            {role: attest.RoleWorker, mutate: func(c *config.Config) { c.Worker.Model = "other" }},
		"worker remote engine":    {role: attest.RoleWorker, mutate: func(c *config.Config) { c.Worker.EngineURL = "https://gpu.example:8000" }},
		"proxy max attempts":      {role: attest.RoleProxy, mutate: func(c *config.Config) { c.Proxy.MaxAttempts = 1 }},
		"refuses simulated peers": {role: attest.RoleWorker, mutate: func(c *config.Config) { c.Attestation.AllowSimulated = false }},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			a, b := base(t.TempDir()), base(t.TempDir())
			tc.mutate(&b)
			ha, simA, err := ImageHash(a, tc.role)
			require.NoError(err)
			hb, simB, err := ImageHash(b, tc.role)
			require.NoError(err)
			assert.True(simA)
			assert.True(simB)
			if tc.same {
				assert.Equal(ha, hb)
			} else {
				assert.NotEqual(ha, hb)
			}
			digest, err := attest.ExecutableDigest()
			require.NoError(err)
			m := attest.SimulatedMeasurements(digest, tc.role, b.Digest(string(tc.role)))
			assert.Equal(m.ImageHash(), hb, "the hash a simulated quote carries")
		})
	}
}

// stubQuoter answers with a fixed quote, or quoteErr.
type stubQuoter struct {
	quote    []byte
	quoteErr error
}

func (s stubQuoter) Quote([64]byte) ([]byte, error) { return s.quote, s.quoteErr }

// TestRealImageHash: outside simulation the hash is read from the TD's quote, and without a TD
// the error says where to get it.
func TestRealImageHash(t *testing.T) {
	root, err := sim.Open(t.TempDir())
	require.NoError(t, err)
	want := attest.SimulatedMeasurements([]byte("a kernel"), attest.RoleWorker, [32]byte{1})
	q, err := root.Quoter(want)
	require.NoError(t, err)
	quote, err := q.Quote([64]byte{})
	require.NoError(t, err)

	testCases := map[string]struct {
		role     attest.Role
		tdx      func() (attest.Quoter, error)
		wantErr  error
		wantText string
	}{
		"the TD's registers": {role: attest.RoleWorker, tdx: func() (attest.Quoter, error) { return stubQuoter{quote: quote}, nil }},
		"not in a TD": {role: attest.RoleProxy, wantErr: attest.ErrNoTDX, wantText: "cocoon attest inspect",
			tdx: func() (attest.Quoter, error) { return nil, fmt.Errorf("%w: no device", attest.ErrNoTDX) }},
		"quote fails": {role: attest.RoleWorker, wantText: "quoting enclave down",
			tdx: func() (attest.Quoter, error) { return stubQuoter{quoteErr: errors.New("quoting enclave down")}, nil }},
		"garbage quote": {role: attest.RoleWorker, wantText: "the TDX guest's quote",
			tdx: func() (attest.Quoter, error) { return stubQuoter{quote: []byte("nope")}, nil }},
		"client": {role: attest.RoleClient, wantText: "presents no quote",
			tdx: func() (attest.Quoter, error) { return nil, errors.New("not asked") }},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			cfg := config.Defaults()
			got, simulated, err := imageHash(cfg, tc.role, tc.tdx)
			assert.False(simulated)
			if tc.wantText != "" {
				require.ErrorContains(err, tc.wantText)
				if tc.wantErr != nil {
					assert.ErrorIs(err, tc.wantErr)
				}
				return
			}
			require.NoError(err)
			assert.Equal(want.ImageHash(), got)
		})
	}
}

func TestPrintImage(t *testing.T) {
	cfg := LoopbackConfig(t.TempDir(), "info")
	var out bytes.Buffer
	require.NoError(t, PrintImage(&out, cfg, "worker"))
	hash, _, err := ImageHash(cfg, attest.RoleWorker)
	require.NoError(t, err)
	assert.Equal(t, hash.String()+" (SIMULATED: development root of trust)\n", out.String())
	assert.Error(t, PrintImage(&out, cfg, "nobody"))
}
