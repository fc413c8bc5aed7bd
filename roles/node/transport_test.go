package node

import (
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/config"
)

// Connections drain before their certificates expire for longer than the longest request may last.
func TestTransportDrainsLongerThanARequest(t *testing.T) {
	for _, tc := range []struct {
		timeout time.Duration
		want    time.Duration
	}{{10 * time.Minute, 15 * time.Minute}, {30 * time.Minute, 31 * time.Minute}} {
		c := config.Defaults()
		c.Data = t.TempDir()
		c.Attestation.Simulated = true
		c.Proxy.RequestTimeout = config.Duration(tc.timeout)
		tr, err := Transport(&c, attest.RoleProxy, attest.Claims{}, "test", zerolog.Nop())
		require.NoError(t, err)
		assert.Equal(t, tc.want, tr.DrainBefore)
	}
}
