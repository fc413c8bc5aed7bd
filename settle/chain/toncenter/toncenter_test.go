package toncenter_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/toncenter"
	"github.com/cocoon-network/cocoon/settle/chain/tonchain"
)

// Answers in the shapes toncenter.com sends (keys this client does not read included).
const (
	uninitAnswer = `{"ok":true,"result":{"@type":"raw.fullAccountState","balance":"2500000000","extra_currencies":[],"code":"","data":"",` +
		`"last_transaction_id":{"@type":"internal.transactionId","lt":"47000000000001","hash":"q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="},` +
		`"block_id":{"@type":"ton.blockIdExt","workchain":-1,"shard":"-9223372036854775808","seqno":1,"root_hash":"","file_hash":""},` +
		`"frozen_hash":"","sync_utime":1700000000,"@extra":"1700000000.1:0:0.5","state":"uninitialized","suspended":false}}`
	noneAnswer = `{"ok":true,"result":{"@type":"raw.fullAccountState","balance":"0","code":"","data":"",` +
		`"last_transaction_id":{"@type":"internal.transactionId","lt":"0","hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},` +
		`"frozen_hash":"","sync_utime":1700000000,"state":"uninitialized"}}`
	seqnoAnswer = `{"ok":true,"result":{"@type":"smc.runResult","gas_used":480,"stack":[["num","0x2a"]],"exit_code":0,"@extra":"x"}}`
)

func stub(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestClientReadsToncenterAnswers(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	ctx := context.Background()
	var gotKey atomic.Value
	url := stub(t, func(w http.ResponseWriter, r *http.Request) {
		gotKey.Store(r.Header.Get("X-API-Key"))
		switch {
		case r.URL.Path == toncenter.PathRunGetMethod:
			_, _ = w.Write([]byte(seqnoAnswer))
		case strings.Contains(r.URL.RawQuery, "ab"):
			_, _ = w.Write([]byte(uninitAnswer))
		default:
			_, _ = w.Write([]byte(noneAnswer))
		}
	})
	c, err := toncenter.New(url+"/", tonchain.Testnet, toncenter.Options{APIKey: "k3y"})
	require.NoError(err)
	acc, err := c.Account(ctx, ton.AccountID{Address: [32]byte{0xab}})
	require.NoError(err)
	assert.Equal(chain.StatusUninit, acc.Status)
	assert.Equal(uint64(2_500_000_000), acc.Balance)
	assert.Equal(uint64(47000000000001), acc.LastLT)
	assert.Equal("k3y", gotKey.Load())
	acc, err = c.Account(ctx, ton.AccountID{Address: [32]byte{0x01}})
	require.NoError(err)
	assert.Equal(chain.StatusNonexist, acc.Status)

	cl, err := toncenter.NewClient(url, toncenter.Options{})
	require.NoError(err)
	seqno, err := cl.GetSeqno(ctx, ton.AccountID{Address: [32]byte{0xab}})
	require.NoError(err)
	assert.Equal(uint32(42), seqno)
}

func TestClientErrors(t *testing.T) {
	ctx := context.Background()
	id := ton.AccountID{Address: [32]byte{0xab}}
	testCases := map[string]struct {
		handler http.HandlerFunc
		wantErr string
	}{
		"bad key": {handler: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"ok":false,"error":"API key does not exist","code":401}`))
		}, wantErr: "check the API key"},
		"refused": {handler: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"ok":false,"error":"LITE_SERVER_UNKNOWN: timeout","code":500}`))
		}, wantErr: "LITE_SERVER_UNKNOWN: timeout"},
		"not the API": {handler: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`<html>hello</html>`))
		}, wantErr: "not a toncenter API v2 answer"},
		"case-variant key": {handler: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"OK":true,"result":{}}`))
		}, wantErr: `unknown key "OK"`},
		"bad state": {handler: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(strings.Replace(uninitAnswer, `"state":"uninitialized"`, `"state":"asleep"`, 1)))
		}, wantErr: `state "asleep"`},
		"bad code": {handler: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(strings.Replace(uninitAnswer, `"state":"uninitialized"`, `"state":"active"`, 1)))
		}, wantErr: ""}, // active without code is well-formed
		"too large": {handler: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"ok":true,"result":"` + strings.Repeat("x", toncenter.MaxAnswerBytes) + `"}`))
		}, wantErr: "answer larger than"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			c, err := toncenter.NewClient(stub(t, tc.handler), toncenter.Options{Retries: -1})
			require.NoError(t, err)
			_, err = c.GetAccountState(ctx, id)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

// TestClientRetriesWhenBusy: 429 and 503 are tried again; the answer after them counts.
func TestClientRetriesWhenBusy(t *testing.T) {
	var calls atomic.Int32
	url := stub(t, func(w http.ResponseWriter, _ *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte(uninitAnswer))
		}
	})
	c, err := toncenter.NewClient(url, toncenter.Options{})
	require.NoError(t, err)
	st, err := c.GetAccountState(context.Background(), ton.AccountID{})
	require.NoError(t, err)
	assert.Equal(t, "Account", string(st.Account.SumType))
	assert.Equal(t, int32(3), calls.Load())
}

func TestNewClientRefusals(t *testing.T) {
	testCases := map[string]struct {
		url, wantErr string
	}{
		"scheme":     {url: "tcp://127.0.0.1:8081", wantErr: "want http://host:port"},
		"no host":    {url: "http://", wantErr: "want http://host:port"},
		"key in URL": {url: "https://toncenter.com/?api_key=secret", wantErr: "no user info, query"},
		"user info":  {url: "https://me:secret@toncenter.com", wantErr: "no user info, query"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			_, err := toncenter.NewClient(tc.url, toncenter.Options{})
			require.ErrorContains(t, err, tc.wantErr)
			assert.NotContains(t, err.Error(), "secret", "a key in the URL is never shown")
		})
	}
}
