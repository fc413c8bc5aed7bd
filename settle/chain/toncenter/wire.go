package toncenter

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"

	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/tlb"
)

// The paths of toncenter's API v2 that cocoon uses, and cocoon's own faucet (served by `cocoon
// chain serve` only, under its own prefix so it never collides with toncenter's).
const (
	PathAddressInformation = "/api/v2/getAddressInformation"
	PathRunGetMethod       = "/api/v2/runGetMethod"
	PathSendBoc            = "/api/v2/sendBoc"
	PathSendBocReturnHash  = "/api/v2/sendBocReturnHash"
	PathFaucet             = "/cocoon/v1/faucet"
)

// Account states as toncenter names them in getAddressInformation.
const (
	StateActive = "active"
	StateUninit = "uninitialized"
	StateFrozen = "frozen"
)

// Envelope is every answer: {"ok": true, "result": …} or {"ok": false, "error": "…", "code": 500}.
type Envelope struct {
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	Code   int             `json:"code,omitempty"`
}

// TransactionID names an account's last transaction.
type TransactionID struct {
	Type string `json:"@type"` // internal.transactionId
	LT   string `json:"lt"`    // decimal
	Hash string `json:"hash"`  // base64
}

// AddressInformation is getAddressInformation's result (raw.fullAccountState). toncenter sends
// more keys (block_id, extra_currencies, @extra); readers ignore what they do not use.
type AddressInformation struct {
	Type              string        `json:"@type"`   // raw.fullAccountState
	Balance           string        `json:"balance"` // nanoTON, decimal
	Code              string        `json:"code"`    // base64 BOC; "" when not active
	Data              string        `json:"data"`    // base64 BOC; "" when not active
	LastTransactionID TransactionID `json:"last_transaction_id"`
	FrozenHash        string        `json:"frozen_hash"` // base64; "" unless frozen
	SyncUtime         int64         `json:"sync_utime"`
	State             string        `json:"state"` // StateActive, StateUninit or StateFrozen
}

// RunGetMethodRequest is runGetMethod's body. Stack entries are ["num", 5] or ["num", "0x5"].
type RunGetMethodRequest struct {
	Address string            `json:"address"`
	Method  string            `json:"method"`
	Stack   []json.RawMessage `json:"stack"`
}

// RunResult is runGetMethod's result (smc.runResult). Stack entries are ["num", "0x5"] or
// ["cell", {"bytes": base64 BOC}], bottom of the stack first.
type RunResult struct {
	Type     string            `json:"@type"` // smc.runResult
	GasUsed  int64             `json:"gas_used"`
	Stack    []json.RawMessage `json:"stack"`
	ExitCode int64             `json:"exit_code"`
}

// SendBocRequest is sendBoc's and sendBocReturnHash's body.
type SendBocRequest struct {
	Boc string `json:"boc"` // base64 BOC of an external message
}

// ExtMessageInfo is sendBocReturnHash's result.
type ExtMessageInfo struct {
	Type string `json:"@type"` // raw.extMessageInfo
	Hash string `json:"hash"`  // base64 hash of the message cell
}

// Ok is sendBoc's result.
type Ok struct {
	Type string `json:"@type"` // ok
}

// FaucetRequest is cocoon's faucet body: mint Amount nanoTON (decimal) to Address.
type FaucetRequest struct {
	Address string `json:"address"`
	Amount  string `json:"amount"`
}

// FaucetResult is the faucet's answer: the account's balance afterwards.
type FaucetResult struct {
	Type    string `json:"@type"`   // cocoon.faucet
	Balance string `json:"balance"` // nanoTON, decimal
}

// Object reads a JSON object's members by exact, case-sensitive key ("BOC" is not "boc", as
// encoding/json would take it): each key of fields is decoded into its target, a key given twice
// is refused, and other keys are refused unless others is set (answers from a newer toncenter may
// carry more). Trailing data after the object is refused.
func Object(b []byte, fields map[string]any, others bool) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	t, err := dec.Token()
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return errors.New("want a JSON object")
	}
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("not JSON: %w", err)
		}
		key, _ := t.(string) // a member starts with its key; the decoder checks that
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if seen[key] {
			return fmt.Errorf("key %q given twice", key)
		}
		seen[key] = true
		target, ok := fields[key]
		if !ok {
			if others {
				continue
			}
			return fmt.Errorf("unknown key %q", key)
		}
		if err := json.Unmarshal(raw, target); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON object")
	}
	return nil
}

// ParseEnvelope reads an answer's envelope.
func ParseEnvelope(b []byte) (Envelope, error) {
	var e Envelope
	err := Object(b, map[string]any{"ok": &e.OK, "result": &e.Result, "error": &e.Error, "code": &e.Code, "@extra": new(json.RawMessage)}, false)
	if err != nil {
		return Envelope{}, err
	}
	if e.OK && len(e.Result) == 0 {
		return Envelope{}, errors.New(`"ok": true without a result`)
	}
	return e, nil
}

// ParseAddressInformation reads getAddressInformation's result into the account state it
// describes (what tongo's chain.Backend returns). An uninitialized account with no balance and
// no transaction is one that does not exist (toncenter does not tell them apart).
func ParseAddressInformation(b []byte) (st tlb.ShardAccount, err error) {
	var a AddressInformation
	var tx, bal json.RawMessage // balance: toncenter writes a decimal string, some versions a number
	if err := Object(b, map[string]any{"@type": &a.Type, "balance": &bal, "code": &a.Code, "data": &a.Data,
		"last_transaction_id": &tx, "frozen_hash": &a.FrozenHash, "state": &a.State}, true); err != nil {
		return st, err
	}
	balance, err := decimal("balance", bal)
	if err != nil {
		return st, err
	}
	if len(tx) > 0 && string(tx) != "null" {
		if err := Object(tx, map[string]any{"@type": &a.LastTransactionID.Type, "lt": &a.LastTransactionID.LT,
			"hash": &a.LastTransactionID.Hash}, true); err != nil {
			return st, fmt.Errorf("last_transaction_id: %w", err)
		}
	}
	var lt uint64
	if a.LastTransactionID.LT != "" {
		if lt, err = strconv.ParseUint(a.LastTransactionID.LT, 10, 64); err != nil {
			return st, fmt.Errorf("last_transaction_id.lt: %w", err)
		}
	}
	hash, err := bits256("last_transaction_id.hash", a.LastTransactionID.Hash)
	if err != nil {
		return st, err
	}
	st.LastTransLt, st.LastTransHash = lt, hash
	if a.State == StateUninit && balance == 0 && lt == 0 {
		st.Account.SumType = "AccountNone"
		return st, nil
	}
	st.Account.SumType = "Account"
	storage := &st.Account.Account.Storage
	storage.LastTransLt = lt
	storage.Balance.Grams = tlb.Grams(balance)
	switch a.State {
	case StateUninit:
		storage.State.SumType = "AccountUninit"
	case StateFrozen:
		storage.State.SumType = "AccountFrozen"
		if storage.State.AccountFrozen.StateHash, err = bits256("frozen_hash", a.FrozenHash); err != nil {
			return st, err
		}
	case StateActive:
		storage.State.SumType = "AccountActive"
		init := &storage.State.AccountActive.StateInit
		code, err := OneCell("code", a.Code)
		if err != nil {
			return st, err
		}
		data, err := OneCell("data", a.Data)
		if err != nil {
			return st, err
		}
		if code != nil {
			init.Code.Exists, init.Code.Value.Value = true, *code
		}
		if data != nil {
			init.Data.Exists, init.Data.Value.Value = true, *data
		}
	default:
		return st, fmt.Errorf("state %q: want %s, %s or %s", a.State, StateActive, StateUninit, StateFrozen)
	}
	return st, nil
}

// ParseRunResult reads runGetMethod's result.
func ParseRunResult(b []byte) (RunResult, error) {
	var r RunResult
	err := Object(b, map[string]any{"@type": &r.Type, "gas_used": &r.GasUsed, "stack": &r.Stack, "exit_code": &r.ExitCode}, true)
	return r, err
}

// ParseFaucetResult reads the faucet's answer: the balance afterwards.
func ParseFaucetResult(b []byte) (uint64, error) {
	var r FaucetResult
	if err := Object(b, map[string]any{"@type": &r.Type, "balance": &r.Balance}, true); err != nil {
		return 0, err
	}
	return strconv.ParseUint(r.Balance, 10, 64)
}

// Num reads a stack entry ["num", "0x…"] (toncenter writes hex, "-0x…" when negative; a JSON
// number is taken too, as clients send them).
func Num(entry json.RawMessage) (*big.Int, error) {
	var e []json.RawMessage
	if err := json.Unmarshal(entry, &e); err != nil || len(e) != 2 {
		return nil, errors.New(`stack entry: want ["num", value]`)
	}
	var kind string
	if err := json.Unmarshal(e[0], &kind); err != nil || kind != "num" {
		return nil, fmt.Errorf("stack entry %s: want a num", e[0])
	}
	var s string
	if err := json.Unmarshal(e[1], &s); err != nil {
		var n json.Number
		if err := json.Unmarshal(e[1], &n); err != nil {
			return nil, fmt.Errorf("num %s: want a hex string or a number", e[1])
		}
		s = n.String()
	}
	neg := strings.HasPrefix(s, "-")
	digits, base := strings.TrimPrefix(s, "-"), 10
	if h, ok := strings.CutPrefix(digits, "0x"); ok {
		digits, base = h, 16
	}
	v, ok := new(big.Int).SetString(digits, base)
	if !ok || len(digits) > 80 || strings.HasPrefix(digits, "-") || strings.HasPrefix(digits, "+") {
		return nil, fmt.Errorf("num %q: not an integer", s)
	}
	if neg {
		v.Neg(v)
	}
	return v, nil
}

// NumEntry is the stack entry ["num", "0x…"] of v.
func NumEntry(v *big.Int) json.RawMessage {
	s := "0x" + new(big.Int).Abs(v).Text(16)
	if v.Sign() < 0 {
		s = "-" + s
	}
	b, _ := json.Marshal([]string{"num", s})
	return b
}

// CellEntry is the stack entry ["cell", {"bytes": base64 BOC}] of c.
func CellEntry(c *boc.Cell) (json.RawMessage, error) {
	b, err := c.ToBoc()
	if err != nil {
		return nil, err
	}
	return json.Marshal([]any{"cell", map[string]string{"bytes": base64.StdEncoding.EncodeToString(b)}})
}

// OneCell decodes a base64 BOC with one root; "" is no cell (nil).
func OneCell(field, s string) (c *boc.Cell, err error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s: not base64: %w", field, err)
	}
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("%s: malformed BOC: %v", field, r)
		}
	}()
	cells, err := boc.DeserializeBoc(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	if len(cells) != 1 {
		return nil, fmt.Errorf("%s: want a BOC with one root, got %d", field, len(cells))
	}
	return cells[0], nil
}

func decimal(field string, raw json.RawMessage) (uint64, error) {
	s := string(raw)
	if len(raw) > 0 && raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("%s: %w", field, err)
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q: want nanoTON in decimal", field, s)
	}
	return v, nil
}

func bits256(field, s string) (tlb.Bits256, error) {
	var h tlb.Bits256
	if s == "" {
		return h, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if b, err = base64.URLEncoding.DecodeString(s); err != nil {
			return h, fmt.Errorf("%s: not base64", field)
		}
	}
	if len(b) != len(h) {
		return h, fmt.Errorf("%s: want %d bytes, got %d", field, len(h), len(b))
	}
	copy(h[:], b)
	return h, nil
}
