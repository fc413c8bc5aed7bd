package contracts_test

import (
	"crypto/ed25519"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

const (
	minClientStake = ton1
	clientDelay    = 3600
	proxyDelay     = 86400
	gasValue       = ton1 / 10 // attached to operations that carry no deposit
)

// proxyEnv is a deployed proxy contract with an owner, a client and a worker.
type proxyEnv struct {
	*env
	key                   ed25519.PrivateKey
	owner, client, worker ton.AccountID
	addr                  ton.AccountID
	seq                   map[ton.AccountID]uint64
}

func newProxyEnv(t testing.TB) *proxyEnv {
	e := newEnv(t)
	p := &proxyEnv{env: e, key: testKey(1), owner: e.user(1), client: e.user(2), worker: e.user(3), seq: map[ton.AccountID]uint64{}}
	data, err := contracts.ProxyData(p.key.Public().(ed25519.PublicKey), p.owner, contracts.ProxyConfig{
		Registry: account(50), MinClientStake: minClientStake, ClientCloseDelay: clientDelay, ProxyCloseDelay: proxyDelay,
	})
	require.NoError(t, err)
	p.addr = e.deploy(p.owner, contracts.ProxyCode(), data, 20*ton1, contracts.ProxyAddStakeBody(0))
	st := e.proxy(p.addr)
	require.Equal(t, uint64(20*ton1-contracts.OpFee), st.ProxyStake)
	return p
}

func (p *proxyEnv) signed(kind settle.Kind, party ton.AccountID, seqno, total uint64, key ed25519.PrivateKey) *boc.Cell {
	p.t.Helper()
	s, err := settle.Sign(settle.State{Proxy: p.addr, Party: party, Kind: kind, Seqno: seqno, Total: total}, key)
	require.NoError(p.t, err)
	body, err := contracts.SubmitStateBody(seqno, s)
	require.NoError(p.t, err)
	return body
}

// state submits a correctly signed state with the party's next sequence number.
func (p *proxyEnv) state(kind settle.Kind, party ton.AccountID, total uint64) *boc.Cell {
	p.seq[party]++
	return p.signed(kind, party, p.seq[party], total, p.key)
}

func (p *proxyEnv) st() contracts.ProxyState { return p.proxy(p.addr) }

// solvent checks the contract can always return what it owes.
func (p *proxyEnv) solvent() {
	p.t.Helper()
	st := p.st()
	assert.GreaterOrEqual(p.t, p.chain.Balance(p.addr), st.ClientFunds+st.ProxyStake, "contract balance below its liabilities")
	var sum uint64
	for _, c := range st.Clients {
		sum += c.Balance + c.Stake
	}
	assert.Equal(p.t, sum, st.ClientFunds, "client funds counter drifted")
}

func (p *proxyEnv) ok(from ton.AccountID, value uint64, body *boc.Cell) {
	p.t.Helper()
	tx, _ := p.send(from, p.addr, value, body)
	require.True(p.t, tx.Success(), "exit code %d", tx.ExitCode())
	// Every operation must fit well inside the fee the contract keeps or the value attached.
	assert.Less(p.t, tx.Fees(), uint64(contracts.OpFee/2), "fees")
	p.solvent()
}

func (p *proxyEnv) acct(id ton.AccountID) contracts.ClientAccount {
	return p.st().Clients[id]
}

// delivered is how much an account gained from a trace (the tests' senders are not debited).
func gained(p *proxyEnv, id ton.AccountID, f func()) uint64 {
	before := p.chain.Balance(id)
	f()
	return p.chain.Balance(id) - before
}

func TestProxyLifecycle(t *testing.T) {
	assert := assert.New(t)
	p := newProxyEnv(t)

	// Deposit: the stake fills first, the rest is balance.
	p.ok(p.client, 10*ton1, contracts.TopUpBody(1))
	c := p.acct(p.client)
	assert.Equal(contracts.ClientAccount{Balance: 10*ton1 - contracts.OpFee - minClientStake, Stake: minClientStake, Open: true}, c)
	assert.Equal(uint32(1), p.st().OpenClients)

	// The proxy charges 2 TON: it moves from the client's balance to the proxy's free funds.
	freeBefore := p.get(p.addr, "get_proxy_state")[7].Int64()
	p.ok(p.owner, gasValue, p.state(settle.KindClientCharged, p.client, 2*ton1))
	c = p.acct(p.client)
	assert.Equal(uint64(8*ton1-contracts.OpFee-minClientStake), c.Balance)
	assert.Equal(uint64(2*ton1), c.Charged)
	assert.Equal(uint64(1), c.Seqno)
	assert.InDelta(freeBefore+2*ton1+gasValue, p.get(p.addr, "get_proxy_state")[7].Int64(), float64(ton1/100))

	// Get-methods agree with storage.
	g := p.get(p.addr, "get_client", addrArg(t, p.client))
	assert.Equal(int64(-1), g[0].Int64())
	assert.Equal(int64(c.Balance), g[1].Int64())
	assert.Equal(int64(2*ton1), g[3].Int64())

	// The worker is paid the difference between signed totals, each time.
	got := gained(p, p.worker, func() { p.ok(p.worker, gasValue, p.state(settle.KindWorkerEarned, p.worker, 3*ton1/2)) })
	assert.GreaterOrEqual(got, uint64(3*ton1/2))
	assert.Less(got, uint64(3*ton1/2+gasValue))
	got = gained(p, p.worker, func() { p.ok(p.worker, gasValue, p.state(settle.KindWorkerEarned, p.worker, 5*ton1/2)) })
	assert.GreaterOrEqual(got, uint64(ton1))
	assert.Less(got, uint64(ton1+gasValue))
	assert.Equal(contracts.WorkerAccount{Paid: 5 * ton1 / 2, Seqno: 2}, p.st().Workers[p.worker])
	g = p.get(p.addr, "get_worker", addrArg(t, p.worker))
	assert.Equal([]int64{-1, 5 * ton1 / 2, 2}, []int64{g[0].Int64(), g[1].Int64(), g[2].Int64()})
	g = p.get(p.addr, "get_config")
	assert.Equal([]int64{minClientStake, clientDelay, proxyDelay}, []int64{g[1].Int64(), g[2].Int64(), g[3].Int64()})

	// The operator adds to its stake.
	stake := p.st().ProxyStake
	p.ok(p.owner, 5*ton1, contracts.ProxyAddStakeBody(9))
	assert.Equal(stake+5*ton1-contracts.OpFee, p.st().ProxyStake)

	// Closing starts the delay: only the change of the attached value comes back; balance and
	// stake stay locked.
	balance := c.Balance
	got = gained(p, p.client, func() { p.ok(p.client, gasValue, contracts.ClientCloseBody(2)) })
	assert.Less(got, uint64(gasValue))
	c = p.acct(p.client)
	assert.Equal(balance, c.Balance)
	assert.Equal(uint64(minClientStake), c.Stake)
	assert.Equal(uint32(start+clientDelay), c.ClosingAt)

	// A charge the proxy had not submitted yet still lands during the delay, from the balance.
	p.ok(p.owner, gasValue, p.state(settle.KindClientCharged, p.client, 5*ton1/2))
	assert.Equal(balance-ton1/2, p.acct(p.client).Balance)
	assert.Equal(uint64(minClientStake), p.acct(p.client).Stake)

	// Before the delay nothing leaves; after it the client takes what is left, even if the proxy is silent.
	tx, _ := p.send(p.client, p.addr, gasValue, contracts.ClientWithdrawStakeBody(3))
	assert.Equal(contracts.ExitTooEarly, tx.ExitCode())
	p.chain.SetNow(start + clientDelay)
	got = gained(p, p.client, func() { p.ok(p.client, gasValue, contracts.ClientWithdrawStakeBody(4)) })
	assert.GreaterOrEqual(got, balance-ton1/2+minClientStake)
	assert.Less(got, balance-ton1/2+minClientStake+gasValue)
	c = p.acct(p.client)
	assert.False(c.Open)
	assert.Equal(uint64(5*ton1/2), c.Charged, "totals survive so old states cannot be replayed")
	assert.Equal(uint32(0), p.st().OpenClients)

	// Reopening keeps the cumulative total: the old seqno is still refused.
	p.ok(p.client, 5*ton1, contracts.TopUpBody(5))
	tx, _ = p.send(p.owner, p.addr, gasValue, p.signed(settle.KindClientCharged, p.client, 2, 5*ton1/2, p.key))
	assert.Equal(contracts.ExitOldSeqno, tx.ExitCode())

	// The proxy closes; it may settle a silent client and take its stake only after the delay.
	p.ok(p.owner, gasValue, contracts.ProxyCloseBody(6))
	assert.Equal(contracts.ProxyClosing, p.st().Status)
	tx, _ = p.send(p.client, p.addr, 5*ton1, contracts.TopUpBody(7))
	assert.Equal(contracts.ExitClosing, tx.ExitCode(), "no deposits into a closing proxy")
	for _, body := range []*boc.Cell{contracts.ProxySettleClientBody(8, p.client), contracts.ProxyWithdrawStakeBody(9)} {
		tx, _ = p.send(p.owner, p.addr, gasValue, body)
		assert.Equal(contracts.ExitTooEarly, tx.ExitCode())
	}
	p.chain.SetNow(start + clientDelay + proxyDelay)
	tx, _ = p.send(p.owner, p.addr, gasValue, contracts.ProxyWithdrawStakeBody(10))
	assert.Equal(contracts.ExitNotSettled, tx.ExitCode(), "a client still has funds here")
	owed := p.acct(p.client).Balance + p.acct(p.client).Stake
	got = gained(p, p.client, func() { p.ok(p.owner, gasValue, contracts.ProxySettleClientBody(11, p.client)) })
	assert.Equal(owed, got)
	got = gained(p, p.owner, func() { p.ok(p.owner, gasValue, contracts.ProxyWithdrawStakeBody(12)) })
	assert.Greater(got, uint64(15*ton1), "stake and earnings go home")
	assert.Equal(contracts.ProxyClosed, p.st().Status)
	assert.Zero(p.chain.Balance(p.addr))
}

func TestProxyRefusals(t *testing.T) {
	other := testKey(2)
	testCases := map[string]struct {
		from     func(*proxyEnv) ton.AccountID
		value    uint64
		body     func(*proxyEnv) *boc.Cell
		wantExit int
	}{
		"bad signature": {
			body:     func(p *proxyEnv) *boc.Cell { return p.signed(settle.KindClientCharged, p.client, 2, 2*ton1, other) },
			wantExit: contracts.ExitBadSignature,
		},
		"state for another proxy": {
			body: func(p *proxyEnv) *boc.Cell {
				s, _ := settle.Sign(settle.State{Proxy: account(77), Party: p.client, Kind: settle.KindClientCharged, Seqno: 2, Total: 2 * ton1}, p.key)
				b, _ := contracts.SubmitStateBody(0, s)
				return b
			},
			wantExit: contracts.ExitWrongProxy,
		},
		"replayed state": {
			body:     func(p *proxyEnv) *boc.Cell { return p.signed(settle.KindClientCharged, p.client, 1, ton1, p.key) },
			wantExit: contracts.ExitOldSeqno,
		},
		"old seqno, higher total": {
			body:     func(p *proxyEnv) *boc.Cell { return p.signed(settle.KindClientCharged, p.client, 1, 2*ton1, p.key) },
			wantExit: contracts.ExitOldSeqno,
		},
		"lower total": {
			body:     func(p *proxyEnv) *boc.Cell { return p.signed(settle.KindClientCharged, p.client, 2, ton1/2, p.key) },
			wantExit: contracts.ExitLowerTotal,
		},
		"worker lower total": {
			body:     func(p *proxyEnv) *boc.Cell { return p.signed(settle.KindWorkerEarned, p.worker, 2, ton1/4, p.key) },
			wantExit: contracts.ExitLowerTotal,
		},
		"charge beyond balance and stake": {
			body:     func(p *proxyEnv) *boc.Cell { return p.signed(settle.KindClientCharged, p.client, 2, 11*ton1, p.key) },
			wantExit: contracts.ExitInsufficientFunds,
		},
		"worker paid beyond earnings and stake": {
			body:     func(p *proxyEnv) *boc.Cell { return p.signed(settle.KindWorkerEarned, p.worker, 2, 100*ton1, p.key) },
			wantExit: contracts.ExitInsufficientFunds,
		},
		"unknown client": {
			body:     func(p *proxyEnv) *boc.Cell { return p.signed(settle.KindClientCharged, account(88), 1, ton1, p.key) },
			wantExit: contracts.ExitUnknownParty,
		},
		"unknown kind": {
			body:     func(p *proxyEnv) *boc.Cell { return p.signed(settle.Kind(3), p.client, 2, 2*ton1, p.key) },
			wantExit: contracts.ExitBadRequest,
		},
		"deposit below the fee": {
			from: func(p *proxyEnv) ton.AccountID { return p.client }, value: contracts.OpFee,
			body:     func(*proxyEnv) *boc.Cell { return contracts.TopUpBody(0) },
			wantExit: contracts.ExitValueTooLow,
		},
		"first deposit below the minimum stake": {
			from: func(p *proxyEnv) ton.AccountID { return account(89) }, value: minClientStake / 2,
			body:     func(*proxyEnv) *boc.Cell { return contracts.TopUpBody(0) },
			wantExit: contracts.ExitValueTooLow,
		},
		"client closes twice": {
			from: func(p *proxyEnv) ton.AccountID { return p.client },
			body: func(p *proxyEnv) *boc.Cell {
				p.ok(p.client, gasValue, contracts.ClientCloseBody(0))
				return contracts.ClientCloseBody(1)
			},
			wantExit: contracts.ExitClosing,
		},
		"deposit while closing": {
			from: func(p *proxyEnv) ton.AccountID { return p.client }, value: 5 * ton1,
			body: func(p *proxyEnv) *boc.Cell {
				p.ok(p.client, gasValue, contracts.ClientCloseBody(0))
				return contracts.TopUpBody(1)
			},
			wantExit: contracts.ExitClosing,
		},
		"stake withdrawal without closing": {
			from:     func(p *proxyEnv) ton.AccountID { return p.client },
			body:     func(*proxyEnv) *boc.Cell { return contracts.ClientWithdrawStakeBody(0) },
			wantExit: contracts.ExitBadRequest,
		},
		"stake withdrawal before the delay": {
			from: func(p *proxyEnv) ton.AccountID { return p.client },
			body: func(p *proxyEnv) *boc.Cell {
				p.ok(p.client, gasValue, contracts.ClientCloseBody(0))
				p.chain.SetNow(start + clientDelay - 1)
				return contracts.ClientWithdrawStakeBody(1)
			},
			wantExit: contracts.ExitTooEarly,
		},
		"close by a stranger": {
			from:     func(p *proxyEnv) ton.AccountID { return account(90) },
			body:     func(*proxyEnv) *boc.Cell { return contracts.ClientCloseBody(0) },
			wantExit: contracts.ExitUnknownParty,
		},
		"proxy withdraw by a client": {
			from:     func(p *proxyEnv) ton.AccountID { return p.client },
			body:     func(*proxyEnv) *boc.Cell { return contracts.ProxyWithdrawBody(0, 1) },
			wantExit: contracts.ExitNotOwner,
		},
		"proxy close by a client": {
			from:     func(p *proxyEnv) ton.AccountID { return p.client },
			body:     func(*proxyEnv) *boc.Cell { return contracts.ProxyCloseBody(0) },
			wantExit: contracts.ExitNotOwner,
		},
		"proxy stake by a client": {
			from: func(p *proxyEnv) ton.AccountID { return p.client }, value: ton1,
			body:     func(*proxyEnv) *boc.Cell { return contracts.ProxyAddStakeBody(0) },
			wantExit: contracts.ExitNotOwner,
		},
		"settle client by a client": {
			from:     func(p *proxyEnv) ton.AccountID { return p.client },
			body:     func(p *proxyEnv) *boc.Cell { return contracts.ProxySettleClientBody(0, p.client) },
			wantExit: contracts.ExitNotOwner,
		},
		"proxy withdraws client money": {
			from:     func(p *proxyEnv) ton.AccountID { return p.owner },
			body:     func(*proxyEnv) *boc.Cell { return contracts.ProxyWithdrawBody(0, 3*ton1) },
			wantExit: contracts.ExitInsufficientFunds,
		},
		"proxy withdraws its stake while active": {
			from:     func(p *proxyEnv) ton.AccountID { return p.owner },
			body:     func(*proxyEnv) *boc.Cell { return contracts.ProxyWithdrawStakeBody(0) },
			wantExit: contracts.ExitBadRequest,
		},
		"unknown op": {
			body:     func(*proxyEnv) *boc.Cell { c := boc.NewCell(); _ = c.WriteUint(0x0badc0de, 32); return c },
			wantExit: contracts.ExitUnknownOp,
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			p := newProxyEnv(t)
			p.ok(p.client, 10*ton1, contracts.TopUpBody(0))
			p.ok(p.owner, gasValue, p.state(settle.KindClientCharged, p.client, ton1))
			p.ok(p.worker, gasValue, p.state(settle.KindWorkerEarned, p.worker, ton1/2))
			from := p.owner
			if tc.from != nil {
				from = tc.from(p)
			}
			value := tc.value
			if value == 0 {
				value = gasValue
			}
			body := tc.body(p)
			before := p.st()
			got := gained(p, from, func() {
				tx, tr := p.send(from, p.addr, value, body)
				require.Equal(tc.wantExit, tx.ExitCode())
				assert.True(tx.Bounced(), "a refused message goes back to its sender")
				require.Len(tr, 2)
			})
			assert.Greater(got, value/2, "bounced value minus fees")
			assert.Less(got, value)
			assert.Equal(before, p.st(), "a refusal changes nothing")
			p.solvent()
		})
	}
}

func TestProxyWithdrawEarnings(t *testing.T) {
	assert := assert.New(t)
	p := newProxyEnv(t)
	p.ok(p.client, 10*ton1, contracts.TopUpBody(0))
	p.ok(p.owner, gasValue, p.state(settle.KindClientCharged, p.client, 4*ton1))
	p.ok(p.worker, gasValue, p.state(settle.KindWorkerEarned, p.worker, 3*ton1))
	// The proxy keeps its commission: 4 charged − 3 paid = 1 TON (plus fee slack) is free.
	got := gained(p, p.owner, func() { p.ok(p.owner, gasValue, contracts.ProxyWithdrawBody(1, ton1)) })
	assert.GreaterOrEqual(got, uint64(ton1))
	st := p.st()
	assert.Equal(uint64(20*ton1-contracts.OpFee), st.ProxyStake, "the stake was not touched")
}

func TestProxyWorkerPaidFromStake(t *testing.T) {
	assert := assert.New(t)
	p := newProxyEnv(t)
	// No client has paid yet, but the worker earned: the proxy's stake guarantees it.
	got := gained(p, p.worker, func() { p.ok(p.worker, gasValue, p.state(settle.KindWorkerEarned, p.worker, 2*ton1)) })
	assert.GreaterOrEqual(got, uint64(2*ton1))
	assert.Less(p.st().ProxyStake, uint64(20*ton1-contracts.OpFee-ton1))
}
