package chaincmd

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"net"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/chainserve"
	"github.com/cocoon-network/cocoon/settle/chain/local"
)

// serveLocal serves a fresh local chain on loopback until the test ends and returns its URL.
func serveLocal(t *testing.T) string {
	t.Helper()
	ch, err := local.Open(filepath.Join(t.TempDir(), local.DefaultFile), local.Options{})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- chainserve.New(ch, chainserve.Config{}, zerolog.New(zerolog.NewTestWriter(t))).Serve(ctx, ln)
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, ch.Close())
	})
	return "http://" + ln.Addr().String()
}

// TestChainCommandsOverServe drives `cocoon chain …` with --chain-url against a served local
// chain, as separate processes next to `cocoon chain serve` do: fund through the faucet, deploy
// a registry and a proxy contract, list the proxy, deposit and show.
func TestChainCommandsOverServe(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	ctx := context.Background()
	url := serveLocal(t)
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		out, err := runChain(ctx, args...)
		require.NoError(err, "chain %v: %s", args, out)
		return out
	}
	match := func(re, s string) string {
		t.Helper()
		m := regexp.MustCompile(re).FindStringSubmatch(s)
		require.Len(m, 2, "%q in %q", re, s)
		return m[1]
	}
	keyFile := func(name string) string { return filepath.Join(dir, name+".key") }
	for _, name := range []string{"owner", "operator", "client", "payment"} {
		run("key", "new", keyFile(name))
	}
	out := run("--chain-url", url, "fund", "--key", keyFile("owner"), "100")
	assert.Contains(out, "balance 100 TON")
	t.Setenv("COCOON_CHAIN_URL", url) // the environment works like the flag
	run("fund", "--key", keyFile("operator"), "50")
	run("fund", "--chain-url", url, "--key", keyFile("client"), "20")
	assert.Contains(run("balance", "--key", keyFile("client")), "balance 20 TON")

	reg := match(`registry deployed at (\S+)`, run("registry", "deploy", "--key", keyFile("owner"), "--price-per-token", "30"))
	payKey, err := chain.LoadKey(keyFile("payment"))
	require.NoError(err)
	payHex := hex.EncodeToString(payKey.Public().(ed25519.PublicKey))
	proxy := match(`proxy contract deployed at (\S+)`, run("proxy", "deploy", "--key", keyFile("operator"), reg, payHex))
	out = run("client", "top-up", "--key", keyFile("client"), proxy, "5")
	assert.Regexp(`  stake\s+1 TON`, out)
	out = run("registry", "show", reg)
	assert.Regexp(`price_per_token\s+30 nanoTON`, out)
	assert.Regexp(`status\s+active`, run("proxy", "show", proxy))
}

func TestServeAndURLRefusals(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	keyPath := filepath.Join(data, "k.key")
	_, err := runChain(ctx, "key", "new", keyPath)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	stopped := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())

	testCases := map[string]struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		"URL and a file":    {args: []string{"balance", "--chain-url", stopped, "--chain-data", filepath.Join(data, "c.db"), "--key", keyPath}, wantCode: 2, wantErr: "not two"},
		"key without URL":   {args: []string{"balance", "--chain-api-key", "k", "--key", keyPath}, wantCode: 2, wantErr: "--chain-api-key needs --chain-url"},
		"nothing serves":    {args: []string{"balance", "--chain-url", stopped, "--key", keyPath}, wantCode: 1, wantErr: "start `cocoon chain serve`"},
		"serve TON":         {args: []string{"serve", "--ton-config", "ton.json"}, wantCode: 2, wantErr: "--ton-config does not apply"},
		"serve bad listen":  {args: []string{"serve", "--data", data, "--listen", "nowhere"}, wantCode: 1, wantErr: "listen on nowhere"},
		"serve bad level":   {args: []string{"serve", "--data", data, "--log-level", "loud"}, wantCode: 2, wantErr: "--log-level"},
		"serve an argument": {args: []string{"serve", "extra"}, wantCode: 2, wantErr: "takes no arguments"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			out, err := runChain(ctx, tc.args...)
			assert.Equal(t, tc.wantCode, chainExitCode(err), "%v: %s", err, out)
			assert.ErrorContains(t, err, tc.wantErr)
		})
	}
}
