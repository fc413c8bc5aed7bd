package chainserve_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/chainserve"
	"github.com/cocoon-network/cocoon/settle/chain/toncenter"
)

// recorder is a backend that keeps what a wallet sends and then reports its seqno moved on.
type recorder struct {
	mu   sync.Mutex
	sent [][]byte
}

func (r *recorder) GetAccountState(context.Context, ton.AccountID) (tlb.ShardAccount, error) {
	var st tlb.ShardAccount
	st.Account.SumType = "Account"
	st.Account.Account.Storage.State.SumType = "AccountUninit"
	st.Account.Account.Storage.Balance.Grams = 10 * ton1
	return st, nil
}

func (r *recorder) SendMessage(_ context.Context, payload []byte) (uint32, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, payload)
	return 0, nil
}

func (r *recorder) GetSeqno(context.Context, ton.AccountID) (uint32, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return uint32(len(r.sent)), nil
}

// walletMessage is a real external message: a v5 wallet's first transfer, deploying it.
func walletMessage(t testing.TB) []byte {
	rec := &recorder{}
	c := chain.New(rec, chain.Options{ConfirmEvery: time.Millisecond})
	require.NoError(t, chain.Transfer(context.Background(), c, key(5), ton.AccountID{Address: [32]byte{1}}, ton1))
	require.Len(t, rec.sent, 1)
	return rec.sent[0]
}

// FuzzRequests: no request body or query crashes the server's parsers; each is read or refused.
// Seeded with what the toncenter client sends (a real wallet message among them) and what
// tonweb sends.
func FuzzRequests(f *testing.F) {
	acct := "0:" + "ab00000000000000000000000000000000000000000000000000000000000000"
	boc := base64.StdEncoding.EncodeToString(walletMessage(f))
	body := func(v any) []byte { b, _ := json.Marshal(v); return b }
	for _, seed := range []struct {
		which uint8
		b     []byte
	}{
		{0, body(toncenter.SendBocRequest{Boc: boc})},
		{1, body(toncenter.RunGetMethodRequest{Address: acct, Method: "seqno", Stack: []json.RawMessage{}})},
		{1, []byte(`{"address":"EQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqB2N","method":"get_wallet_data","stack":[["num",5],["num","-0x1f"]]}`)},
		{2, body(toncenter.FaucetRequest{Address: acct, Amount: "1000000000"})},
		{3, []byte("address=" + url.QueryEscape(acct) + "&api_key=k")},
	} {
		f.Add(seed.which, seed.b)
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		switch which % 4 {
		case 0:
			if m, err := chainserve.ParseSendBoc(b); err == nil {
				require.NotEmpty(t, m.Raw)
			}
		case 1:
			if q, err := chainserve.ParseRunGetMethod(b); err == nil {
				require.NotEmpty(t, q.Method)
				require.LessOrEqual(t, q.Stack.Len(), 16)
			}
		case 2:
			if _, amount, err := chainserve.ParseFaucet(b, 5*ton1); err == nil {
				require.LessOrEqual(t, amount, uint64(5*ton1))
			}
		default:
			_, _ = chainserve.ParseAddressQuery(string(b))
		}
	})
}
