package demo

import (
	"crypto/ed25519"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/roles/node"
	"github.com/cocoon-network/cocoon/settle/chain/local"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

const tonUnit = 1_000_000_000

// TestDepositPlan: a top-up is due only once less than half of what a full deposit leaves to
// spend is left; the stake, never spent, does not count.
func TestDepositPlan(t *testing.T) {
	stake := contracts.DefaultParams().MinClientStake
	testCases := map[string]struct {
		stake, balance   uint64
		wantTarget, send uint64
		wantErr          string
	}{
		"first":            {wantTarget: 2*tonUnit - stake - contracts.OpFee, send: 2 * tonUnit},
		"second run":       {stake: stake, balance: 979_994_400, wantTarget: 980_000_000, send: 0},
		"half left":        {stake: stake, balance: 490_000_000, wantTarget: 980_000_000, send: 0},
		"less than half":   {stake: stake, balance: 400_000_000, wantTarget: 980_000_000, send: 580_000_000 + contracts.OpFee},
		"spent out":        {stake: stake, wantTarget: 980_000_000, send: 980_000_000 + contracts.OpFee},
		"stake short":      {stake: stake / 2, balance: 900_000_000, wantTarget: 980_000_000, send: stake/2 + 80_000_000 + contracts.OpFee},
		"nothing to spend": {wantErr: "leaves nothing to spend"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			amount := uint64(2 * tonUnit)
			if tc.wantErr != "" {
				amount = stake
			}
			target, send, err := depositPlan(amount, stake, tc.stake, tc.balance)
			if tc.wantErr != "" {
				assert.ErrorContains(err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(tc.wantTarget, target)
			assert.Equal(tc.send, send)
		})
	}
}

// TestSecondRunDoesNotTopUp: on the chain, the first run deposits 2 TON, said as stake, what is
// left to spend and the fee, which add up; the next finds enough left and sends nothing.
func TestSecondRunDoesNotTopUp(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	ctx := t.Context()
	dir := t.TempDir()
	ch, err := local.Open(filepath.Join(dir, local.DefaultFile), local.Options{})
	require.NoError(err)
	defer func() { require.NoError(ch.Close()) }()
	key := func(name string) ed25519.PrivateKey {
		k, err := node.KeyIn(dir, name)
		require.NoError(err)
		return k
	}
	client := key("client")
	d, err := local.SetupDemo(ctx, ch, local.DemoConfig{Owner: key("owner"), Params: contracts.DefaultParams(),
		Fund:    []ed25519.PublicKey{client.Public().(ed25519.PublicKey)},
		Proxies: []local.DemoProxy{{Operator: key("operator"), PaymentKey: key("payment").Public().(ed25519.PublicKey)}}})
	require.NoError(err)

	first, err := keepDeposited(ctx, ch, client, []ton.AccountID{d.Proxy}, deposit)
	require.NoError(err)
	require.Len(first, 1)
	assert.Equal(uint64(deposit), first[0].Sent)
	assert.Equal(first[0].Sent, first[0].ToStake+first[0].Balance+contracts.OpFee, "stake, what is left to spend and the fee make the deposit")
	var out strings.Builder
	printDeposits(&out, first)
	assert.Contains(out.String(), "2 TON sent to ")
	assert.Contains(out.String(), "= 1 TON stake (held while the account is open) + 0.98 TON to spend + 0.02 TON contract fee\n")

	second, err := keepDeposited(ctx, ch, client, []ton.AccountID{d.Proxy}, deposit)
	require.NoError(err)
	assert.Zero(second[0].Sent, "0.98 TON left to spend is not low")
	out.Reset()
	printDeposits(&out, second)
	assert.Contains(out.String(), "0.98 TON left to spend with ")
	assert.Contains(out.String(), "no top-up (one is sent when less than 0.49 TON is left)")
}

// TestSettledLinesAddUp: the settlement lines say what the proxy kept and where the worker's
// wallet growth beyond its pay comes from, so that each line adds up.
func TestSettledLinesAddUp(t *testing.T) {
	assert := assert.New(t)
	var out strings.Builder
	settled{charged: 5600, chargedAll: 11200, left: 979_988_800, paid: 4480, paidAll: 8960, walletGrew: 47_134_480, submits: 1}.print(&out, false, false)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 4)
	assert.Equal("  client charged  0.0000056 TON now, 0.0000112 TON in all; 0.9799888 TON of the deposit left to spend", lines[1])
	assert.Equal("  worker paid     0.00000448 TON by the proxy contract (0.00000896 TON in all); the proxy keeps the other 0.00000112 TON of the charge", lines[2])
	assert.Equal("  worker wallet   +0.04713448 TON: the 0.00000448 TON pay and 0.04713 TON of the 0.05 TON gas each submit attaches, which the contract returns with the pay", lines[3])
}

// TestBanner: two short lines, the simulated-TDX warning one of them, saying where the logs go.
func TestBanner(t *testing.T) {
	assert := assert.New(t)
	var out strings.Builder
	printBanner(&out, Options{Proxies: 1, Workers: 2, Data: "/d", LogFile: "/d/demo.log"}, "/d/tdx-sim")
	assert.Equal("cocoon demo: 1 proxy, 2 workers and a client on this machine; state in /d, logs in /d/demo.log\n"+
		"SIMULATED TDX: quotes are signed by the development root of trust in /d/tdx-sim and prove nothing about hardware\n", out.String())
	out.Reset()
	printBanner(&out, Options{Proxies: 2, Workers: 1, Data: "/d", LogLevel: "info"}, "/d/tdx-sim")
	assert.Contains(out.String(), "2 proxies, 1 worker and a client on this machine; state in /d, logs here (--log-level info)\n")
}
