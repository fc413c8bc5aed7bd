// Package chainserve is `cocoon chain serve`: the local chain (settle/chain/local: the real
// contracts in tongo's emulator, kept in one bbolt file) served to other processes over HTTP, so
// standalone roles on one machine or in containers settle on one chain. It speaks the subset of
// toncenter's API v2 that settle/chain/toncenter uses (getAddressInformation, runGetMethod,
// sendBoc, sendBocReturnHash), so the client that talks to it also talks to toncenter.com, plus a
// faucet at POST /cocoon/v1/faucet.
//
// Requests are untrusted: bodies are bounded (Config.MaxBodyBytes), requests in progress too
// (Config.MaxConcurrent, then 503 with Retry-After), each has a deadline (Config.RequestTimeout),
// and JSON is read by exact key with unknown and repeated keys refused.
package chainserve

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle/chain/toncenter"
	"github.com/cocoon-network/cocoon/settle/emu"
)

// ledger is the raw chain served; *local.Chain is one.
type ledger interface {
	GetAccountState(ctx context.Context, id ton.AccountID) (tlb.ShardAccount, error)
	SendMessage(ctx context.Context, payload []byte) (uint32, error)
	RunGet(ctx context.Context, id ton.AccountID, method string, args tlb.VmStack) (uint32, tlb.VmStack, error)
	Faucet(ctx context.Context, to ton.AccountID, amount uint64) error
}

// Config bounds what a request may cost.
type Config struct {
	// MaxBodyBytes bounds a request body; default 64 KiB (TON refuses larger external messages).
	MaxBodyBytes int64
	// MaxConcurrent bounds the requests served at once; more wait a second, then get 503.
	// Default 16 (the chain runs one message at a time anyway).
	MaxConcurrent int
	// RequestTimeout bounds each request; default 10s.
	RequestTimeout time.Duration
	// MaxFaucet bounds one faucet request, in nanoTON; default 1,000,000 TON.
	MaxFaucet uint64
	// Clock is the time answers carry (sync_utime); default time.Now.
	Clock func() time.Time
}

const (
	maxStack  = 16  // runGetMethod arguments
	maxMethod = 128 // get-method name length
)

// Server answers the API for one chain.
type Server struct {
	l     ledger
	cfg   Config
	log   zerolog.Logger
	slots chan struct{}
}

// New serves l.
func New(l ledger, cfg Config, log zerolog.Logger) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 16
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.MaxFaucet == 0 {
		cfg.MaxFaucet = 1_000_000 * 1_000_000_000
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Server{l: l, cfg: cfg, log: log.With().Str("component", "chainserve").Logger(), slots: make(chan struct{}, cfg.MaxConcurrent)}
}

// Serve answers on ln until ctx ends, then shuts down (waiting up to five seconds for requests
// in progress) and returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       s.cfg.RequestTimeout,
		WriteTimeout:      s.cfg.RequestTimeout + 5*time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		s.log.Warn().Str("listen", ln.Addr().String()).Msg("the chain API and its faucet are open to every host that reaches this address (a test chain: use it on a private network)")
	}
	s.log.Info().Str("listen", ln.Addr().String()).Msg("chain API up (toncenter API v2 subset, faucet at " + toncenter.PathFaucet + ")")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve chain: %w", err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shut)
	<-errc
	if err != nil {
		return fmt.Errorf("serve chain: shut down: %w", err)
	}
	return nil
}

// apiError is a refusal with its HTTP status.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func refuse(status int, format string, args ...any) error {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP answers one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	wait := time.NewTimer(time.Second)
	select {
	case s.slots <- struct{}{}:
		wait.Stop()
	case <-wait.C:
		w.Header().Set("Retry-After", "1")
		s.answer(w, r, start, nil, refuse(http.StatusServiceUnavailable, "busy: %d requests in progress; try again", s.cfg.MaxConcurrent))
		return
	case <-r.Context().Done():
		wait.Stop()
		return
	}
	defer func() { <-s.slots }()
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	result, err := s.route(ctx, w, r)
	s.answer(w, r, start, result, err)
}

func (s *Server) route(ctx context.Context, w http.ResponseWriter, r *http.Request) (any, error) {
	want := http.MethodPost
	if r.URL.Path == toncenter.PathAddressInformation {
		want = http.MethodGet
	}
	switch r.URL.Path {
	case toncenter.PathAddressInformation, toncenter.PathRunGetMethod, toncenter.PathSendBoc,
		toncenter.PathSendBocReturnHash, toncenter.PathFaucet:
	default:
		return nil, refuse(http.StatusNotFound, "no method %q here: `cocoon chain serve` answers %s, %s, %s, %s and %s",
			r.URL.Path, toncenter.PathAddressInformation, toncenter.PathRunGetMethod, toncenter.PathSendBoc,
			toncenter.PathSendBocReturnHash, toncenter.PathFaucet)
	}
	if r.Method != want {
		w.Header().Set("Allow", want)
		return nil, refuse(http.StatusMethodNotAllowed, "%s takes %s", r.URL.Path, want)
	}
	if r.URL.Path == toncenter.PathAddressInformation {
		id, err := ParseAddressQuery(r.URL.RawQuery)
		if err != nil {
			return nil, err
		}
		return s.addressInformation(ctx, id)
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/json" {
		return nil, refuse(http.StatusUnsupportedMediaType, "send the body as Content-Type: application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, refuse(http.StatusRequestEntityTooLarge, "body larger than %d bytes", s.cfg.MaxBodyBytes)
		}
		return nil, refuse(http.StatusBadRequest, "read body: %v", err)
	}
	switch r.URL.Path {
	case toncenter.PathRunGetMethod:
		q, err := ParseRunGetMethod(body)
		if err != nil {
			return nil, err
		}
		return s.runGetMethod(ctx, q)
	case toncenter.PathFaucet:
		to, amount, err := ParseFaucet(body, s.cfg.MaxFaucet)
		if err != nil {
			return nil, err
		}
		return s.faucet(ctx, to, amount)
	default:
		msg, err := ParseSendBoc(body)
		if err != nil {
			return nil, err
		}
		if _, err := s.l.SendMessage(ctx, msg.Raw); err != nil {
			return nil, refuse(http.StatusInternalServerError, "cannot apply external message: %v", err)
		}
		if r.URL.Path == toncenter.PathSendBocReturnHash {
			return toncenter.ExtMessageInfo{Type: "raw.extMessageInfo", Hash: base64.StdEncoding.EncodeToString(msg.Hash[:])}, nil
		}
		return toncenter.Ok{Type: "ok"}, nil
	}
}

// answer writes the envelope, and logs the request.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, start time.Time, result any, err error) {
	status, env := http.StatusOK, toncenter.Envelope{OK: true}
	if err == nil {
		if env.Result, err = json.Marshal(result); err != nil {
			err = refuse(http.StatusInternalServerError, "encode answer: %v", err)
		}
	}
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{status: http.StatusInternalServerError, msg: err.Error()}
		}
		status, env = ae.status, toncenter.Envelope{Error: ae.msg, Code: ae.status}
	}
	b, _ := json.Marshal(env)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	ev := s.log.Debug()
	if status >= 500 {
		ev = s.log.Warn()
	}
	ev.Str("method", r.Method).Str("path", r.URL.Path).Int("status", status).Dur("took", time.Since(start)).Msg("chain API request")
}

func (s *Server) addressInformation(ctx context.Context, id ton.AccountID) (toncenter.AddressInformation, error) {
	st, err := s.l.GetAccountState(ctx, id)
	if err != nil {
		return toncenter.AddressInformation{}, err
	}
	return AddressInformation(st, s.cfg.Clock())
}

// AddressInformation is getAddressInformation's result for an account state.
func AddressInformation(st tlb.ShardAccount, now time.Time) (toncenter.AddressInformation, error) {
	a := toncenter.AddressInformation{
		Type: "raw.fullAccountState", Balance: "0", State: toncenter.StateUninit, SyncUtime: now.Unix(),
		LastTransactionID: toncenter.TransactionID{Type: "internal.transactionId", LT: strconv.FormatUint(st.LastTransLt, 10),
			Hash: base64.StdEncoding.EncodeToString(st.LastTransHash[:])},
	}
	if st.Account.SumType != "Account" {
		return a, nil
	}
	storage := st.Account.Account.Storage
	a.Balance = strconv.FormatUint(uint64(storage.Balance.Grams), 10)
	switch storage.State.SumType {
	case "AccountFrozen":
		a.State, a.FrozenHash = toncenter.StateFrozen, base64.StdEncoding.EncodeToString(storage.State.AccountFrozen.StateHash[:])
	case "AccountActive":
		a.State = toncenter.StateActive
		init := storage.State.AccountActive.StateInit
		for _, f := range []struct {
			dst *string
			m   tlb.Maybe[tlb.Ref[boc.Cell]]
		}{{&a.Code, init.Code}, {&a.Data, init.Data}} {
			if !f.m.Exists {
				continue
			}
			c := f.m.Value.Value
			b, err := c.ToBoc()
			if err != nil {
				return a, fmt.Errorf("encode account: %w", err)
			}
			*f.dst = base64.StdEncoding.EncodeToString(b)
		}
	}
	return a, nil
}

func (s *Server) runGetMethod(ctx context.Context, q RunGet) (toncenter.RunResult, error) {
	exit, stack, err := s.l.RunGet(ctx, q.Address, q.Method, q.Stack)
	res := toncenter.RunResult{Type: "smc.runResult", Stack: []json.RawMessage{}}
	if errors.Is(err, emu.ErrNotActive) {
		// As toncenter answers for an account without code.
		res.ExitCode = -13
		return res, nil
	}
	if err != nil {
		return res, err
	}
	res.ExitCode = int64(int32(exit))
	for i := range stack.Len() {
		e, err := stackEntry(stack.PeekBottom(i))
		if err != nil {
			return res, refuse(http.StatusNotImplemented, "%s returned %v: only numbers, cells and nulls are served", q.Method, err)
		}
		res.Stack = append(res.Stack, e)
	}
	return res, nil
}

func stackEntry(v tlb.VmStackValue) (json.RawMessage, error) {
	switch v.SumType {
	case "VmStkTinyInt":
		return toncenter.NumEntry(big.NewInt(v.VmStkTinyInt)), nil
	case "VmStkInt":
		b := big.Int(v.VmStkInt)
		return toncenter.NumEntry(&b), nil
	case "VmStkCell":
		c := v.VmStkCell.Value
		return toncenter.CellEntry(&c)
	case "VmStkNull":
		return json.RawMessage(`["null",null]`), nil
	default:
		return nil, fmt.Errorf("a %s", v.SumType)
	}
}

func (s *Server) faucet(ctx context.Context, to ton.AccountID, amount uint64) (toncenter.FaucetResult, error) {
	if err := s.l.Faucet(ctx, to, amount); err != nil {
		return toncenter.FaucetResult{}, err
	}
	st, err := s.l.GetAccountState(ctx, to)
	if err != nil {
		return toncenter.FaucetResult{}, err
	}
	s.log.Info().Str("account", to.ToRaw()).Uint64("nanoton", amount).Msg("faucet")
	return toncenter.FaucetResult{Type: "cocoon.faucet", Balance: strconv.FormatUint(uint64(st.Account.Account.Storage.Balance.Grams), 10)}, nil
}

// ParseAddressQuery reads getAddressInformation's query: address, once (api_key, which tonweb
// may send in the query, is ignored: this chain needs none).
func ParseAddressQuery(rawQuery string) (ton.AccountID, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return ton.AccountID{}, refuse(http.StatusBadRequest, "query: %v", err)
	}
	for k, v := range q {
		if k != "address" && k != "api_key" {
			return ton.AccountID{}, refuse(http.StatusBadRequest, "unknown query parameter %q (want address)", k)
		}
		if len(v) != 1 {
			return ton.AccountID{}, refuse(http.StatusBadRequest, "query parameter %q given %d times", k, len(v))
		}
	}
	return parseAccount(q.Get("address"))
}

func parseAccount(s string) (ton.AccountID, error) {
	if s == "" {
		return ton.AccountID{}, refuse(http.StatusUnprocessableEntity, "address: required")
	}
	if len(s) > 100 {
		return ton.AccountID{}, refuse(http.StatusUnprocessableEntity, "address: too long")
	}
	id, err := ton.ParseAccountID(s)
	if err != nil {
		return ton.AccountID{}, refuse(http.StatusUnprocessableEntity, "address %q: %v", s, err)
	}
	return id, nil
}

// RunGet is a parsed runGetMethod request.
type RunGet struct {
	Address ton.AccountID
	Method  string
	Stack   tlb.VmStack
}

// ParseRunGetMethod reads runGetMethod's body; arguments may be numbers only.
func ParseRunGetMethod(body []byte) (RunGet, error) {
	var req toncenter.RunGetMethodRequest
	if err := toncenter.Object(body, map[string]any{"address": &req.Address, "method": &req.Method, "stack": &req.Stack}, false); err != nil {
		return RunGet{}, refuse(http.StatusBadRequest, "runGetMethod: %v", err)
	}
	id, err := parseAccount(req.Address)
	if err != nil {
		return RunGet{}, err
	}
	if req.Method == "" || len(req.Method) > maxMethod {
		return RunGet{}, refuse(http.StatusUnprocessableEntity, "method: want a get-method name of 1 to %d characters", maxMethod)
	}
	for _, r := range req.Method {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return RunGet{}, refuse(http.StatusUnprocessableEntity, "method %q: want letters, digits and _", req.Method)
		}
	}
	if len(req.Stack) > maxStack {
		return RunGet{}, refuse(http.StatusUnprocessableEntity, "stack: at most %d arguments", maxStack)
	}
	q := RunGet{Address: id, Method: req.Method}
	for i, e := range req.Stack {
		v, err := toncenter.Num(e)
		if err != nil {
			return RunGet{}, refuse(http.StatusUnprocessableEntity, "stack[%d]: %v (only numbers are taken)", i, err)
		}
		if v.BitLen() > 256 {
			return RunGet{}, refuse(http.StatusUnprocessableEntity, "stack[%d]: more than 257 bits", i)
		}
		if v.IsInt64() {
			q.Stack.Put(tlb.VmStackValue{SumType: "VmStkTinyInt", VmStkTinyInt: v.Int64()})
		} else {
			q.Stack.Put(tlb.VmStackValue{SumType: "VmStkInt", VmStkInt: tlb.Int257(*v)})
		}
	}
	return q, nil
}

// ExternalMessage is a parsed sendBoc body: an inbound external message.
type ExternalMessage struct {
	Raw  []byte   // the BOC, as the chain takes it
	Hash [32]byte // the message cell's hash
}

// ParseSendBoc reads sendBoc's body and checks that it holds one inbound external message.
func ParseSendBoc(body []byte) (m ExternalMessage, err error) {
	var req toncenter.SendBocRequest
	if err := toncenter.Object(body, map[string]any{"boc": &req.Boc}, false); err != nil {
		return m, refuse(http.StatusBadRequest, "sendBoc: %v", err)
	}
	if req.Boc == "" {
		return m, refuse(http.StatusUnprocessableEntity, "boc: required")
	}
	cell, err := toncenter.OneCell("boc", req.Boc)
	if err != nil {
		return m, refuse(http.StatusUnprocessableEntity, "%v", err)
	}
	defer func() {
		if r := recover(); r != nil {
			m, err = ExternalMessage{}, refuse(http.StatusUnprocessableEntity, "boc: malformed message: %v", r)
		}
	}()
	var msg tlb.Message
	if err := tlb.Unmarshal(cell, &msg); err != nil {
		return m, refuse(http.StatusUnprocessableEntity, "boc: not a message: %v", err)
	}
	if msg.Info.SumType != "ExtInMsgInfo" {
		return m, refuse(http.StatusUnprocessableEntity, "boc: an %s, want an inbound external message", msg.Info.SumType)
	}
	cell.ResetCounters()
	h, err := cell.Hash()
	if err != nil {
		return m, refuse(http.StatusUnprocessableEntity, "boc: %v", err)
	}
	m.Raw, _ = base64.StdEncoding.DecodeString(req.Boc)
	copy(m.Hash[:], h)
	return m, nil
}

// ParseFaucet reads the faucet's body: an address and an amount of nanoTON up to limit.
func ParseFaucet(body []byte, limit uint64) (ton.AccountID, uint64, error) {
	var req toncenter.FaucetRequest
	if err := toncenter.Object(body, map[string]any{"address": &req.Address, "amount": &req.Amount}, false); err != nil {
		return ton.AccountID{}, 0, refuse(http.StatusBadRequest, "faucet: %v", err)
	}
	id, err := parseAccount(req.Address)
	if err != nil {
		return ton.AccountID{}, 0, err
	}
	amount, err := strconv.ParseUint(req.Amount, 10, 64)
	if err != nil || amount == 0 || len(req.Amount) > 20 {
		return ton.AccountID{}, 0, refuse(http.StatusUnprocessableEntity, "amount %q: want nanoTON in decimal, at least 1", req.Amount)
	}
	if amount > limit {
		return ton.AccountID{}, 0, refuse(http.StatusUnprocessableEntity, "amount %d: at most %d nanoTON per request", amount, limit)
	}
	return id, amount, nil
}
