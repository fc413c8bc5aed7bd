package transport

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/cocoon-network/cocoon/attest"
)

// TestOnHandshake: both ends learn how long the attested connection took to set up.
func TestOnHandshake(t *testing.T) {
	var dialed, accepted atomic.Int64
	server, client := newNode(t, attest.RoleProxy).config(t), newNode(t, attest.RoleWorker).config(t)
	server.OnHandshake = func(d time.Duration) { accepted.Store(int64(d)) }
	client.OnHandshake = func(d time.Duration) { dialed.Store(int64(d)) }
	pairConfigs(t, server, client)
	assert.Positive(t, dialed.Load(), "the dialer measured its handshake")
	assert.Positive(t, accepted.Load(), "the listener measured its handshake")
	assert.GreaterOrEqual(t, dialed.Load(), accepted.Load(), "the dialer's span holds the listener's")
}
