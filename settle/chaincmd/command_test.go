package chaincmd

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"
	"github.com/urfave/cli/v2"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/paystate"
)

// runChain runs `cocoon chain args…` in-process and returns what it printed.
func runChain(ctx context.Context, args ...string) (string, error) {
	app := &cli.App{Name: "cocoon", Commands: []*cli.Command{Command()}}
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	err := app.RunContext(ctx, append([]string{"cocoon", "chain"}, args...))
	return out.String(), err
}

// chainExitCode is the status main would exit with for err.
func chainExitCode(err error) int {
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}

// TestChainCommands drives `cocoon chain …` against a fresh local chain laid out like the demo's
// data directory: keys, deposit, registry and proxy contract, then signed states kept as paystate
// keeps them, submitted to the contract.
func TestChainCommands(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	ctx := context.Background()
	data := t.TempDir()
	t.Setenv("COCOON_DATA", filepath.Join(data, "elsewhere")) // flags beat the environment
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

	keys := filepath.Join(data, "keys")
	require.NoError(os.MkdirAll(keys, 0o700))
	keyFile := func(name string) string { return filepath.Join(keys, name+".key") }
	for _, name := range []string{"registry-owner", "proxy-operator", "client-wallet", "worker-wallet", "proxy-payment"} {
		out := run("key", "new", keyFile(name))
		assert.Regexp(`public key\s+[0-9a-f]{64}`, out)
		assert.Regexp(`wallet \(mainnet, local chain\)\s+UQ`, out)
	}
	_, err := runChain(ctx, "key", "new", keyFile("client-wallet"))
	require.Error(err, "key new never overwrites a key")
	payKey, err := chain.LoadKey(keyFile("proxy-payment"))
	require.NoError(err)
	payHex := hex.EncodeToString(payKey.Public().(ed25519.PublicKey))

	// The first command makes the chain file; the chain flags go before or after the subcommand.
	chainDB := filepath.Join(data, local.DefaultFile)
	_, err = runChain(ctx, "balance", "--data", data, "--key", keyFile("registry-owner"))
	require.ErrorContains(err, "no local chain", "--data alone never makes a chain")
	out := run("--chain-data", chainDB, "fund", "--key", keyFile("registry-owner"), "100")
	assert.Contains(out, "balance 100 TON")
	for _, name := range []string{"proxy-operator", "client-wallet", "worker-wallet"} {
		run("fund", "--data", data, "--key", keyFile(name), "50")
	}
	out = run("--data", data, "balance", "--key", keyFile("worker-wallet"))
	assert.Contains(out, "balance 50 TON")
	workerAddr := match(`wallet (\S+) balance`, out)
	clientAddr := match(`wallet (\S+) balance`, run("balance", "--data", data, "--key", keyFile("client-wallet")))

	// Registry.
	out = run("registry", "deploy", "--data", data, "--key", keyFile("registry-owner"),
		"--price-per-token", "25", "--min-client-stake", "1", "--client-close-delay", "0s")
	reg := match(`registry deployed at (\S+)`, out)
	out = run("registry", "set-params", "--data", data, "--key", keyFile("registry-owner"), "--worker-fee-per-token", "15", reg)
	assert.Contains(out, "version now 1")
	_, err = runChain(ctx, "registry", "set-params", "--data", data, "--key", keyFile("registry-owner"), reg)
	assert.Equal(2, chainExitCode(err), "set-params without a parameter: %v", err)
	assert.Contains(run("registry", "show", "--data", data, reg), "4000 (1000 = 1x)")
	run("registry", "set-params", "--data", data, "--key", keyFile("registry-owner"), "--max-coefficient", "2500", reg)
	assert.Contains(run("registry", "show", "--data", data, reg), "2500 (1000 = 1x)")
	_, err = runChain(ctx, "registry", "set-params", "--data", data, "--key", keyFile("registry-owner"), "--max-coefficient", "0", reg)
	assert.Equal(2, chainExitCode(err), "a zero cap: %v", err)
	run("registry", "allow", "--data", data, "--key", keyFile("registry-owner"), reg, "model", "sha256:ab"+hex.EncodeToString(make([]byte, 31)))

	// Proxy contract, bound to the payment key, with the registry's minimum stake by default.
	out = run("proxy", "deploy", "--data", data, "--key", keyFile("proxy-operator"), reg, payHex)
	proxyAddr := match(`proxy contract deployed at (\S+)`, out)
	run("registry", "set-proxy", "--data", data, "--key", keyFile("registry-owner"), reg, payHex, proxyAddr, "127.0.0.1:4433")
	out = run("registry", "show", "--data", data, reg)
	assert.Regexp(`price_per_token\s+25 nanoTON`, out)
	assert.Regexp(`worker_fee_per_token\s+15 nanoTON`, out)
	assert.Regexp(`model\s+ab00`, out)
	assert.Regexp(`proxy\s+payment key `+payHex+`\n\s+contract\s+`+proxyAddr+`\n\s+worker endpoint\s+127.0.0.1:4433\n\s+client endpoint\s+127.0.0.1:4433\n`, out,
		"without a client endpoint, clients use the worker one")
	out = run("registry", "set-proxy", "--data", data, "--key", keyFile("registry-owner"), reg, payHex, proxyAddr, "10.0.0.1:4433", "proxy.example:443")
	assert.Contains(out, "version now 5")
	out = run("registry", "show", "--data", data, reg)
	assert.Regexp(`worker endpoint\s+10.0.0.1:4433\n\s+client endpoint\s+proxy.example:443\n`, out)
	assert.Regexp(`version\s+5\n`, out)
	out = run("proxy", "show", "--data", data, proxyAddr)
	assert.Regexp(`status\s+active`, out)
	assert.Regexp(`proxy stake\s+10 TON`, out)

	// The client deposits 5 TON (0.02 TON fee; 1 TON stake, the rest balance).
	out = run("client", "top-up", "--data", data, "--key", keyFile("client-wallet"), proxyAddr, "5")
	assert.Regexp(`  balance\s+3.98 TON`, out)
	assert.Regexp(`  stake\s+1 TON`, out)

	// Signed states as the client and worker keep them while the proxy serves them.
	party := func(s string) ton.AccountID {
		a, err := ton.ParseAccountID(s)
		require.NoError(err)
		return a
	}
	proxy, client, worker := party(proxyAddr), party(clientAddr), party(workerAddr)
	keep := func(role string, kind settle.Kind, who ton.AccountID, seqno, total uint64) []byte {
		s, err := settle.Sign(settle.State{Proxy: proxy, Party: who, Kind: kind, Seqno: seqno, Total: total}, payKey)
		require.NoError(err)
		raw, err := s.MarshalBinary()
		require.NoError(err)
		store, err := paystate.Open(filepath.Join(data, role+"-states"), kind, who)
		require.NoError(err)
		_, err = store.Accept(payKey.Public().(ed25519.PublicKey), raw)
		require.NoError(err)
		return raw
	}
	onChain := func() (settledClient, settledWorker uint64, workerWallet uint64) {
		t.Helper()
		c, err := local.Open(chainDB, local.Options{})
		require.NoError(err)
		defer func() { require.NoError(c.Close()) }()
		p, err := chain.Proxy(ctx, c, proxy)
		require.NoError(err)
		w, err := chain.Balance(ctx, c, worker)
		require.NoError(err)
		return p.Clients[client].Charged, p.Workers[worker].Paid, w
	}
	keep("client", settle.KindClientCharged, client, 3, 400_000_000)
	keep("worker", settle.KindWorkerEarned, worker, 2, 300_000_000)

	_, _, walletBefore := onChain()
	out = run("submit", "--data", data, "--role", "client") // the client's own key pays the gas
	assert.Contains(out, "0.4 TON charged to proxy contract")
	assert.Contains(out, "deposit left 3.58 TON")
	out = run("submit", "--data", data, "--role", "worker", "--key", keyFile("proxy-operator")) // anyone may submit
	assert.Contains(out, "paid 0.3 TON by proxy contract")
	charged, paid, walletAfter := onChain()
	assert.Equal(uint64(400_000_000), charged)
	assert.Equal(uint64(300_000_000), paid)
	// The worker also gets what is left of the gas the submitter attached.
	assert.GreaterOrEqual(walletAfter, walletBefore+300_000_000, "the payout reached the worker's wallet")
	assert.Less(walletAfter, walletBefore+300_000_000+chain.GasAmount)

	out = run("submit", "--data", data, "--role", "worker")
	assert.Contains(out, "seqno 2 already settled", "a state already on chain is skipped")
	_, err = runChain(ctx, "submit", "--data", t.TempDir(), "--chain-data", chainDB, "--role", "client", "--key", keyFile("client-wallet"))
	require.ErrorContains(err, "no signed states")

	// A newer earned state, cashed from a file with `worker payout`.
	raw := keep("worker", settle.KindWorkerEarned, worker, 5, 1_000_000_000)
	stateFile := filepath.Join(t.TempDir(), "earned.state")
	require.NoError(os.WriteFile(stateFile, raw, 0o600))
	out = run("worker", "payout", "--data", data, "--key", keyFile("worker-wallet"), stateFile)
	assert.Contains(out, "paid 0.7 TON")

	// The client leaves: closing locks balance and stake for the (zero) delay; then both come back.
	out = run("client", "withdraw", "--data", data, "--key", keyFile("client-wallet"), proxyAddr)
	assert.Regexp(`  balance\s+3.58 TON`, out)
	assert.Contains(out, "closing: balance and stake free after")
	out = run("client", "withdraw-stake", "--data", data, "--key", keyFile("client-wallet"), proxyAddr)
	assert.Regexp(`  balance\s+0 TON`, out)
	assert.Regexp(`  stake\s+0 TON`, out)
}

func TestChainCommandErrors(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	chainDB := filepath.Join(data, local.DefaultFile)
	keyPath := filepath.Join(data, "k.key")
	_, err := runChain(ctx, "key", "new", keyPath)
	require.NoError(t, err)

	zero, payHex := "0:"+hex.EncodeToString(make([]byte, 32)), hex.EncodeToString(make([]byte, 32))
	testCases := map[string]struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		"missing key":            {args: []string{"balance", "--chain-data", chainDB}, wantCode: 2, wantErr: "--key FILE is required"},
		"bad amount":             {args: []string{"fund", "--chain-data", chainDB, "--key", keyPath, "1.2.3"}, wantCode: 2, wantErr: "bad TON amount"},
		"missing argument":       {args: []string{"client", "top-up", "--chain-data", chainDB, "--key", keyPath}, wantCode: 2, wantErr: "want PROXY-CONTRACT AMOUNT"},
		"bad address":            {args: []string{"registry", "show", "--chain-data", chainDB, "nowhere"}, wantCode: 2, wantErr: "address"},
		"bad endpoint":           {args: []string{"registry", "set-proxy", "--chain-data", chainDB, "--key", keyPath, zero, payHex, zero, "127.0.0.1"}, wantCode: 2, wantErr: `endpoint "127.0.0.1" is not HOST:PORT`},
		"bad client endpoint":    {args: []string{"registry", "set-proxy", "--chain-data", chainDB, "--key", keyPath, zero, payHex, zero, "127.0.0.1:1", ":443"}, wantCode: 2, wantErr: `endpoint ":443" is not HOST:PORT`},
		"long endpoint":          {args: []string{"registry", "set-proxy", "--chain-data", chainDB, "--key", keyPath, zero, payHex, zero, strings.Repeat("a", 124) + ":443"}, wantCode: 2, wantErr: "longer than 127 bytes"},
		"too many endpoints":     {args: []string{"registry", "set-proxy", "--chain-data", chainDB, "--key", keyPath, zero, payHex, zero, "a:1", "b:2", "c:3"}, wantCode: 2, wantErr: "want REGISTRY PAYMENT-KEY-HEX PROXY-CONTRACT WORKER-ENDPOINT [CLIENT-ENDPOINT]"},
		"bad list":               {args: []string{"registry", "allow", "--chain-data", chainDB, "--key", keyPath, "0:" + hex.EncodeToString(make([]byte, 32)), "images", "00"}, wantCode: 2, wantErr: "want proxy-image"},
		"network without TON":    {args: []string{"balance", "--network", "testnet", "--key", keyPath}, wantCode: 2, wantErr: "--network needs --ton-config"},
		"TON without network":    {args: []string{"--ton-config", "ton.json", "balance", "--key", keyPath}, wantCode: 2, wantErr: "--ton-config needs --network"},
		"both chains":            {args: []string{"balance", "--ton-config", "ton.json", "--network", "testnet", "--chain-data", chainDB, "--key", keyPath}, wantCode: 2, wantErr: "not both"},
		"flag after an argument": {args: []string{"registry", "show", "0:" + hex.EncodeToString(make([]byte, 32)), "--chain-data", chainDB}, wantCode: 2, wantErr: "give the flags first"},
		"unknown role":           {args: []string{"submit", "--data", data, "--role", "proxy"}, wantCode: 2, wantErr: "want client or worker"},
		"not deployed":           {args: []string{"proxy", "show", "--chain-data", chainDB, "0:" + hex.EncodeToString(make([]byte, 32))}, wantCode: 1, wantErr: "not deployed"},
		"submit without a key":   {args: []string{"submit", "--data", data, "--role", "worker"}, wantCode: 1, wantErr: "worker-wallet.key"},
		"unreadable key":         {args: []string{"fund", "--chain-data", chainDB, "--key", filepath.Join(data, "none.key"), "1"}, wantCode: 1, wantErr: "load key"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			out, err := runChain(ctx, tc.args...)
			assert.Equal(tc.wantCode, chainExitCode(err), "%v: %s", err, out)
			assert.ErrorContains(err, tc.wantErr)
		})
	}
}

// TestChainLockedByDemo: while another process (here, this one) holds the local chain, as a
// running demo does, commands say to stop it.
func TestChainLockedByDemo(t *testing.T) {
	require := require.New(t)
	ctx := context.Background()
	data := t.TempDir()
	keyPath := filepath.Join(data, "k.key")
	_, err := runChain(ctx, "key", "new", keyPath)
	require.NoError(err)
	held, err := local.OpenDir(data, local.Options{})
	require.NoError(err)
	defer func() { require.NoError(held.Close()) }()
	_, err = runChain(ctx, "balance", "--data", data, "--key", keyPath)
	require.ErrorContains(err, "stop the demo first")
}
