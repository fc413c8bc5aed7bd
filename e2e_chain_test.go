package main

import (
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestChainServeSharedByProcesses: `cocoon chain serve` holds the local chain; `cocoon chain
// fund` and `balance`, each its own process, reach it with --chain-url, and what one mints the
// next one sees. A second serve on the same file is refused with the reason.
func TestChainServeSharedByProcesses(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	bin := cocoonBinary(t)
	data := t.TempDir()
	listen := freePort(t, "tcp")
	url := "http://" + listen
	serve := start(t, "chain serve", "chain", "serve", "--data", data, "--listen", listen)
	waitHTTP(t, url+"/api/v2/getAddressInformation?address=0:"+zeros, http.StatusOK)

	chainCmd := func(args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timescale(60*time.Second))
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, append([]string{"chain"}, args...)...).CombinedOutput()
		return string(out), err
	}
	key := filepath.Join(t.TempDir(), "wallet.key")
	out, err := chainCmd("key", "new", key)
	require.NoError(err, out)
	out, err = chainCmd("fund", "--chain-url", url, "--key", key, "7.5")
	require.NoError(err, out)
	assert.Contains(out, "balance 7.5 TON")
	out, err = chainCmd("fund", "--chain-url", url, "--key", key, "2.5")
	require.NoError(err, out)
	out, err = chainCmd("balance", "--chain-url", url, "--key", key)
	require.NoError(err, out)
	assert.Regexp(regexp.MustCompile(`balance 10 TON`), out, "one chain across processes")

	out, err = chainCmd("serve", "--data", data, "--listen", freePort(t, "tcp"))
	require.Error(err, "the file is held")
	assert.Contains(out, "locked by another process")
	out, err = chainCmd("balance", "--data", data, "--key", key)
	require.NoError(err, "the locked file is read through the serve, which recorded its URL beside it")
	assert.Contains(out, "balance 10 TON")
	select {
	case <-serve.done:
		t.Fatalf("chain serve exited:\n%s", serve.out.String())
	default:
	}
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"
