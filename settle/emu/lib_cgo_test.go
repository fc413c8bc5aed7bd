//go:build cgo && (linux || darwin)

package emu

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/tonkeeper/tongo/txemulator"
)

// TestConfigIsTongos: the embedded blockchain config is the one the tongo version in go.mod
// bundles (re-copy tongo-config.b64 from txemulator.DefaultConfig after upgrading tongo).
func TestConfigIsTongos(t *testing.T) {
	assert.True(t, strings.TrimSpace(tongoConfig) == txemulator.DefaultConfig,
		"tongo-config.b64 differs from txemulator.DefaultConfig of this tongo version; copy it again")
}
