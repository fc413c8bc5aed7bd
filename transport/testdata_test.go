package transport

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/ratls"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// TestUpdateTestdata regenerates the recorded quotes, claims, certificates and frames in testdata/
// that seed the fuzz tests. It runs only with COCOON_UPDATE_TESTDATA=1.
func TestUpdateTestdata(t *testing.T) {
	if os.Getenv("COCOON_UPDATE_TESTDATA") != "1" {
		t.Skip("set COCOON_UPDATE_TESTDATA=1 to regenerate testdata/")
	}
	require := require.New(t)
	root := filepath.Join("..", "testdata")
	write := func(dir, name string, b []byte) {
		require.NoError(os.MkdirAll(filepath.Join(root, dir), 0o755))
		require.NoError(os.WriteFile(filepath.Join(root, dir, name), b, 0o644))
	}
	for _, role := range []attest.Role{attest.RoleProxy, attest.RoleWorker, attest.RoleClient} {
		n := newNode(t, role)
		c := n.identity.Certificate()
		write("certs", string(role)+".der", c.Certificate[0])
		rc, err := ratls.ParseCertificate(c.Certificate, c.Leaf.NotBefore.Add(2*60e9), 0)
		require.NoError(err)
		write("claims", string(role)+".bin", rc.Claims)
		if rc.Quote != nil {
			write("quotes", "sim-"+string(role)+".quote", rc.Quote)
		}
	}
	frames := map[string][]byte{}
	var err error
	frames["hello"], err = wire.Marshal(nil, &wire.Hello{ProtocolVersion: wire.ProtocolVersion, SoftwareVersion: "test"})
	require.NoError(err)
	frames["ping"], err = wire.Marshal(nil, &wire.Ping{Nonce: 42})
	require.NoError(err)
	frames["error"], err = wire.Marshal(nil, &wire.Error{Code: uint32(wire.CodeOverloaded), Message: "busy"})
	require.NoError(err)
	for name, b := range frames {
		write("frames", name+".bin", b)
	}
}
