package tonchain

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/settle/emu"
)

const ton1 = 1_000_000_000

// recorder is a lite server stand-in: it answers from an emulated chain (the recorded
// answers a lite server would give for these accounts) and records what is sent.
type recorder struct {
	mu    sync.Mutex
	chain *emu.Chain
	sent  [][]byte
}

func (r *recorder) GetAccountState(_ context.Context, id ton.AccountID) (tlb.ShardAccount, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.chain.Account(id), nil
}

func (r *recorder) SendMessage(_ context.Context, payload []byte) (uint32, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, payload)
	// A lite server only relays; here the message is also applied so seqno moves on.
	_, err := r.chain.SendExternal(payload)
	return 0, err
}

func (r *recorder) GetSeqno(ctx context.Context, id ton.AccountID) (uint32, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	exit, st, err := r.chain.RunGet(ctx, id, "seqno", tlb.VmStack{})
	if err != nil {
		return 0, nil // not deployed: seqno 0, as liteapi reports
	}
	if exit != 0 {
		return 0, fmt.Errorf("seqno exit code %d", exit)
	}
	return uint32(st.Peek(0).Int64()), nil
}

func TestNetworks(t *testing.T) {
	testCases := map[string]struct {
		network Network
		want    int32
		wantErr bool
	}{
		"mainnet": {network: Mainnet, want: -239},
		"testnet": {network: Testnet, want: -3},
		"unknown": {network: "devnet", wantErr: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			id, err := tc.network.GlobalID()
			if tc.wantErr {
				require.Error(t, err)
				_, err = New(&recorder{}, tc.network)
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, id)
		})
	}
}

func TestDialBadConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "global.config.json")
	require.NoError(t, os.WriteFile(p, []byte("{not json"), 0o600))
	_, err := Dial(context.Background(), p, Testnet)
	require.Error(t, err)
	_, err = Dial(context.Background(), filepath.Join(t.TempDir(), "missing.json"), Testnet)
	require.Error(t, err)
	_, err = Dial(context.Background(), p, "devnet")
	require.Error(t, err)
}

// TestTestnetWalletFlow drives the chain operations through tonchain's backend contract:
// what it sends must be valid testnet v5 wallet messages that do what was asked.
func TestTestnetWalletFlow(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	ctx := context.Background()
	e, err := emu.New(uint32(0))
	require.NoError(err)
	rec := &recorder{chain: e}
	c, err := New(rec, Testnet)
	require.NoError(err)
	e.SetNow(uint32(time.Now().Unix()))

	owner := ed25519.NewKeyFromSeed(make([]byte, 32))
	ownerAddr, err := c.WalletAddress(owner.Public().(ed25519.PublicKey))
	require.NoError(err)
	e.Mint(ownerAddr, 100*ton1)

	params := contracts.RegistryParams{Prices: settle.Prices{PricePerToken: 7, PromptMult: 10000}}
	reg, err := chain.DeployRegistry(ctx, c, owner, contracts.Registry{Params: params}, ton1)
	require.NoError(err)
	require.Len(rec.sent, 1, "one external message")

	r, err := chain.Registry(ctx, c, reg)
	require.NoError(err)
	assert.Equal(uint64(7), r.Params.PricePerToken)
	assert.Equal(ownerAddr, r.Owner)

	// The same key on mainnet is another wallet: messages cannot cross networks.
	m, err := New(rec, Mainnet)
	require.NoError(err)
	mainAddr, err := m.WalletAddress(owner.Public().(ed25519.PublicKey))
	require.NoError(err)
	assert.NotEqual(ownerAddr, mainAddr)

	params.PricePerToken = 9
	body, err := contracts.SetParamsBody(1, params)
	require.NoError(err)
	require.NoError(chain.Call(ctx, c, owner, reg, 0, body))
	r, err = chain.Registry(ctx, c, reg)
	require.NoError(err)
	assert.Equal(uint32(1), r.Version)
	assert.Equal(uint64(9), r.Params.PricePerToken)
}
