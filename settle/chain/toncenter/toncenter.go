// Package toncenter reaches TON through toncenter's HTTP API v2, the JSON API of toncenter.com
// that tonweb, @ton/ton's TonClient and tonutils speak too. Client is a chain.Backend (account
// states from getAddressInformation, messages through sendBoc, seqnos from runGetMethod), so
// New gives a normal chain.Chain. The same client works against toncenter.com (mainnet or
// testnet, with an API key) and against `cocoon chain serve` (settle/chain/chainserve), which
// serves the local chain through this API plus a faucet (Client.Faucet, POST /cocoon/v1/faucet).
//
// wire.go holds the JSON shapes, shared with the server. Answers are untrusted: they are read
// within a size limit, by exact key, and a malformed one fails the read it answers.
package toncenter

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/tonchain"
)

// MaxAnswerBytes bounds an answer's body; an account's code and data are far smaller.
const MaxAnswerBytes = 8 << 20

// ErrNoFaucet is returned by Faucet from a service without one (toncenter.com).
var ErrNoFaucet = errors.New("this chain service has no faucet (only `cocoon chain serve` has one)")

// Options tune NewClient.
type Options struct {
	// APIKey is sent as X-API-Key (toncenter.com rate-limits requests without one). It is never
	// logged or shown in errors.
	APIKey string
	// HTTP is the HTTP client; default: one with a 30s timeout per request.
	HTTP *http.Client
	// Retries is how often a request refused for load (429, 503) is tried again, with backoff;
	// default 5, negative: none.
	Retries int
}

// Client speaks toncenter's API v2 at one base URL. It is safe for concurrent use.
type Client struct {
	base    string // scheme://host[:port][/prefix], no trailing slash
	shown   string // base as errors show it
	apiKey  string
	http    *http.Client
	retries int
}

// NewClient checks the base URL (http or https, no query, no user info: put the key in
// Options.APIKey) and makes a client.
func NewClient(base string, opts Options) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil {
		// The URL is not shown: it may hold a key.
		return nil, errors.New("chain url: not a URL; want http://host:port or https://host (as `cocoon chain serve` or toncenter.com)")
	}
	shown := u.Scheme + "://" + u.Host + u.Path // never the user info or query, where keys hide
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("chain url %s: want http://host:port or https://host (as `cocoon chain serve` or toncenter.com)", shown)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("chain url %s: no user info, query or fragment (the API key goes in payments.chain_api_key or --chain-api-key)", shown)
	}
	if opts.HTTP == nil {
		opts.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.Retries == 0 {
		opts.Retries = 5
	}
	trimmed := strings.TrimSuffix(u.String(), "/")
	return &Client{base: trimmed, shown: strings.TrimSuffix(shown, "/"), apiKey: opts.APIKey, http: opts.HTTP, retries: opts.Retries}, nil
}

// Chain is a chain.Chain on a toncenter API, with the faucet of `cocoon chain serve`.
type Chain struct {
	chain.Chain
	client *Client
}

// New builds the chain of network (the local chain's wallets are mainnet's) on the API at base.
func New(base string, network tonchain.Network, opts Options) (*Chain, error) {
	id, err := network.GlobalID()
	if err != nil {
		return nil, fmt.Errorf("chain network: %w", err)
	}
	c, err := NewClient(base, opts)
	if err != nil {
		return nil, err
	}
	return &Chain{Chain: chain.New(c, chain.Options{NetworkGlobalID: &id}), client: c}, nil
}

// Faucet mints amount nanoTON to an account, on `cocoon chain serve` only.
func (c *Chain) Faucet(ctx context.Context, to ton.AccountID, amount uint64) error {
	return c.client.Faucet(ctx, to, amount)
}

// GetAccountState is the account's state (getAddressInformation).
func (c *Client) GetAccountState(ctx context.Context, id ton.AccountID) (tlb.ShardAccount, error) {
	res, err := c.do(ctx, http.MethodGet, PathAddressInformation+"?address="+url.QueryEscape(id.ToRaw()), nil)
	if err != nil {
		return tlb.ShardAccount{}, err
	}
	st, err := ParseAddressInformation(res)
	if err != nil {
		return tlb.ShardAccount{}, fmt.Errorf("%s: malformed account state of %s: %w", c.shown, id.ToRaw(), err)
	}
	return st, nil
}

// SendMessage submits an external message (sendBoc).
func (c *Client) SendMessage(ctx context.Context, payload []byte) (uint32, error) {
	_, err := c.do(ctx, http.MethodPost, PathSendBoc, SendBocRequest{Boc: base64.StdEncoding.EncodeToString(payload)})
	return 0, err
}

// GetSeqno runs the account's seqno get-method; an account that is not active has seqno 0.
func (c *Client) GetSeqno(ctx context.Context, id ton.AccountID) (uint32, error) {
	seqno, err := c.seqno(ctx, id)
	if err == nil {
		return seqno, nil
	}
	// toncenter answers a get-method on an account without code with an exit code or an error,
	// depending on its version: look at the account before failing.
	st, serr := c.GetAccountState(ctx, id)
	if serr == nil && (st.Account.SumType != "Account" || st.Account.Account.Storage.State.SumType != "AccountActive") {
		return 0, nil
	}
	return 0, err
}

func (c *Client) seqno(ctx context.Context, id ton.AccountID) (uint32, error) {
	res, err := c.do(ctx, http.MethodPost, PathRunGetMethod, RunGetMethodRequest{Address: id.ToRaw(), Method: "seqno", Stack: []json.RawMessage{}})
	if err != nil {
		return 0, err
	}
	r, err := ParseRunResult(res)
	if err != nil {
		return 0, fmt.Errorf("%s: malformed seqno answer for %s: %w", c.shown, id.ToRaw(), err)
	}
	if r.ExitCode != 0 && r.ExitCode != 1 {
		return 0, fmt.Errorf("%s: seqno of %s: exit code %d", c.shown, id.ToRaw(), r.ExitCode)
	}
	if len(r.Stack) != 1 {
		return 0, fmt.Errorf("%s: seqno of %s: want one stack entry, got %d", c.shown, id.ToRaw(), len(r.Stack))
	}
	v, err := Num(r.Stack[0])
	if err != nil || !v.IsUint64() || v.Uint64() > 1<<32-1 {
		return 0, fmt.Errorf("%s: seqno of %s: %s is not a seqno", c.shown, id.ToRaw(), r.Stack[0])
	}
	return uint32(v.Uint64()), nil
}

// Faucet asks `cocoon chain serve` to mint amount nanoTON to an account.
func (c *Client) Faucet(ctx context.Context, to ton.AccountID, amount uint64) error {
	res, err := c.do(ctx, http.MethodPost, PathFaucet, FaucetRequest{Address: to.ToRaw(), Amount: strconv.FormatUint(amount, 10)})
	if err != nil {
		return fmt.Errorf("faucet: %w", err)
	}
	if _, err := ParseFaucetResult(res); err != nil {
		return fmt.Errorf("faucet: %s: malformed answer: %w", c.shown, err)
	}
	return nil
}

// do sends one request (a JSON body for POST) and returns the result of an "ok" answer, trying
// again with backoff while the service refuses it for load.
func (c *Client) do(ctx context.Context, method, path string, body any) (json.RawMessage, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	backoff := 200 * time.Millisecond
	for attempt := 0; ; attempt++ {
		res, wait, err := c.once(ctx, method, path, payload)
		if wait == 0 || attempt >= c.retries {
			return res, err
		}
		t := time.NewTimer(max(wait, backoff))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// once sends one request; wait > 0 says it was refused for load and may be tried again after.
func (c *Client) once(ctx context.Context, method, path string, payload []byte) (json.RawMessage, time.Duration, error) {
	name, _, _ := strings.Cut(path, "?")
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(payload))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.apiKey != "" {
		req.Header.Set("X-API-Key", c.apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, 0, fmt.Errorf("no chain service at %s: start `cocoon chain serve` there, or correct --chain-url / payments.chain_url: %w", c.shown, op.Err)
		}
		return nil, 0, fmt.Errorf("%s%s: %w", c.shown, name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("%s%s: read answer: %w", c.shown, name, err)
	}
	if len(b) > MaxAnswerBytes {
		return nil, 0, fmt.Errorf("%s%s: answer larger than %d bytes", c.shown, name, MaxAnswerBytes)
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		wait := 200 * time.Millisecond
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = min(time.Duration(s)*time.Second, 5*time.Second)
		}
		return nil, wait, fmt.Errorf("%s%s: busy (%s): try again later, or use an API key (--chain-api-key) with toncenter.com", c.shown, name, resp.Status)
	case http.StatusUnauthorized, http.StatusForbidden:
		return nil, 0, fmt.Errorf("%s%s: refused (%s): check the API key (--chain-api-key, payments.chain_api_key)", c.shown, name, resp.Status)
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		if path == PathFaucet {
			return nil, 0, fmt.Errorf("%s: %w", c.shown, ErrNoFaucet)
		}
	}
	env, err := ParseEnvelope(b)
	if err != nil {
		return nil, 0, fmt.Errorf("%s%s: not a toncenter API v2 answer (%s): %w; is --chain-url the service's base URL?", c.shown, name, resp.Status, err)
	}
	if !env.OK {
		return nil, 0, fmt.Errorf("%s%s: %s (%s)", c.shown, name, env.Error, resp.Status)
	}
	return env.Result, 0, nil
}
