package node

import (
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/node/nodetest"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chaincmd"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// TestClientClosesAtAnyMoment runs proxy, worker and clients with payments on the local chain.
// Each client closes its account at another moment and never submits a state itself; the proxy
// lands every charge it signed during the close delay, the worker is paid what it earned, and the
// proxy's stake is untouched: nobody is worse off than the signed states say.
func TestClientClosesAtAnyMoment(t *testing.T) {
	// requests is how many answers each client takes before it closes.
	requests := map[string]int{"client-none": 0, "client-one": 1, "client-five": 5}
	n := newTestNet(t, 90*time.Second, "owner", "operator", "worker", "payment", "client-none", "client-one", "client-five")
	require := require.New(t)
	ctx, ch, keys, log := n.ctx, n.ch, n.keys, n.log
	params := contracts.DefaultParams()
	params.ClientCloseDelay = 2
	registry := n.registry(params)
	contract := n.proxyContract(registry, "operator", "payment")
	const deposit = 3_000_000_000
	for name := range requests {
		require.NoError(chain.TopUp(ctx, ch, keys[name], contract, deposit))
	}
	before, err := chain.Proxy(ctx, ch, contract)
	require.NoError(err)

	role := func(name, kind string) config.Config {
		c := n.withKey(name, registry)
		c.Payments.ProxyContract = config.Address{AccountID: contract, Set: true}
		if kind == "worker" {
			c.Payments.SubmitThreshold = 1
		}
		require.NoError(c.Validate(kind))
		return c
	}
	m, err := proxyMeter(ctx, n.set, role("payment", "proxy"), log)
	require.NoError(err)
	n.closeAfter(m.Close)
	p, err := BuildProxy(role("payment", "proxy"), "test", log, m, nil)
	require.NoError(err)
	n.run(m.Run)
	n.run(p.Run)
	paddr := p.Addr(ctx).String()

	_, wp := n.paidWorker(role("worker", "worker"), paddr)

	apis := map[string]string{}
	accounts := map[string]ton.AccountID{}
	for name := range requests {
		ccfg := role(name, "client")
		ccfg.Client.Proxies = []string{paddr}
		cp, err := party(ctx, n.set, ccfg, "client", settle.KindClientCharged, log)
		require.NoError(err)
		cl, err := BuildClient(ccfg, "test", log, cp, nil)
		require.NoError(err)
		n.run(cl.Run)
		apis[name], accounts[name] = "http://"+cl.Addr().String(), cp.Account
	}
	nodetest.WaitFor(t, "the worker and every deposit", func() bool {
		for _, a := range accounts {
			if c, _ := m.Ledger().Client(a); c.Available() == 0 {
				return false
			}
		}
		return p.WorkerCount() == 1
	})

	told := map[string]uint64{} // what each app was told it paid
	for name, n := range requests {
		for range n {
			resp := nodetest.Post(t, ctx, apis[name]+"/v1/chat/completions", nodetest.ChatBody("cocoon-builtin", false, `,"max_tokens":40`))
			require.Equal(200, resp.StatusCode)
			var got struct {
				Usage struct {
					TotalCost uint64 `json:"total_cost"`
				} `json:"usage"`
			}
			require.NoError(json.NewDecoder(resp.Body).Decode(&got))
			require.NoError(resp.Body.Close())
			told[name] += got.Usage.TotalCost
		}
		require.NoError(chaincmd.Withdraw(ctx, ch, io.Discard, keys[name], contract), "%s closes", name)
	}

	// During the delay the proxy lands every charge it signed, without the clients' help.
	nodetest.WaitFor(t, "the proxy to settle what it charged the closing clients", func() bool {
		ps, err := chain.Proxy(ctx, ch, contract)
		if err != nil {
			return false
		}
		for name, a := range accounts {
			c, err := m.Ledger().Client(a)
			if err != nil || ps.Clients[a].Charged != c.Charged || c.Charged != told[name] {
				return false
			}
		}
		return true
	})
	// After the delay each client takes back what is left.
	nodetest.WaitFor(t, "every client to take back the rest", func() bool {
		ps, err := chain.Proxy(ctx, ch, contract)
		if err != nil {
			return false
		}
		left := false
		for name, a := range accounts {
			if acc := ps.Clients[a]; acc.Balance+acc.Stake > 0 {
				left = true
				_ = chaincmd.WithdrawStake(ctx, ch, io.Discard, keys[name], contract)
			}
		}
		return !left
	})
	earned, err := m.Ledger().Worker(wp.Account)
	require.NoError(err)
	nodetest.WaitFor(t, "the worker's payout", func() bool {
		ps, err := chain.Proxy(ctx, ch, contract)
		return err == nil && ps.Workers[wp.Account].Paid == earned.Earned
	})

	after, err := chain.Proxy(ctx, ch, contract)
	require.NoError(err)
	var charged uint64
	for name, a := range accounts {
		acc := after.Clients[a]
		assert.Equal(t, told[name], acc.Charged, "%s: the chain charged what the app was told", name)
		assert.Zero(t, acc.Balance+acc.Stake, "%s: got back deposit − charged", name)
		charged += acc.Charged
	}
	assert.Positive(t, charged)
	assert.LessOrEqual(t, after.Workers[wp.Account].Paid, charged, "workers are paid from what clients were charged")
	assert.Equal(t, before.ProxyStake, after.ProxyStake, "the proxy's stake paid nobody")
}
