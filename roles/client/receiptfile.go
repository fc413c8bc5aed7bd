package client

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/cocoon-network/cocoon/attest/ratls"
	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/transport/seal"
)

// maxReceiptFile bounds a receipt document: a certificate with its quote, two signed records.
const maxReceiptFile = 1 << 20

// ParseReceipt reads a receipt document as the client serves it, with exact keys.
func ParseReceipt(doc []byte) (*Receipt, error) {
	if len(doc) > maxReceiptFile {
		return nil, fmt.Errorf("receipt file is %d bytes, at most %d", len(doc), maxReceiptFile)
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	var e Receipt
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("receipt file: %w", err)
	}
	if e.Receipt == nil || len(e.WorkerCertificate) == 0 || len(e.UsageRecord) == 0 {
		return nil, errors.New("receipt file: receipt, usage_record and worker_certificate are required")
	}
	return &e, nil
}

// VerifyReceipt checks a receipt document offline: the worker's signatures on the receipt and the
// usage record, that the worker's certificate (valid at the receipt's time) holds the key that
// signed them and the quote the receipt names, and, when given, that request is the body the
// receipt names and answer (as the client served it to the app) the answer. The quote itself is
// checked against Intel's collateral by `cocoon attest verify` on the certificate. It returns one
// line per check that passed.
func VerifyReceipt(doc, request, answer []byte) ([]string, error) {
	e, err := ParseReceipt(doc)
	if err != nil {
		return nil, err
	}
	r := e.Receipt
	var ok []string
	rc, err := ratls.ParseCertificate([][]byte{e.WorkerCertificate}, r.Time, 0)
	if err != nil {
		return ok, fmt.Errorf("worker certificate: %w", err)
	}
	if !bytes.Equal(rc.Evidence().Key, r.WorkerKey) {
		return ok, fmt.Errorf("the receipt is signed with key %x, the worker certificate holds %x: %w", r.WorkerKey, rc.Evidence().Key, seal.ErrSignature)
	}
	if seal.HashQuote(rc.Quote) != r.QuoteHash {
		return ok, fmt.Errorf("the receipt names quote %s, the worker certificate carries %s: %w", r.QuoteHash, seal.HashQuote(rc.Quote), seal.ErrAnswerMismatch)
	}
	ok = append(ok, "worker certificate holds the signing key and the quote "+r.QuoteHash.String()[:16]+"…")
	if err := r.Verify(r.WorkerKey); err != nil {
		return ok, err
	}
	if r.RequestID != e.RequestID {
		return ok, fmt.Errorf("the receipt is for request %q, the file for %q: %w", r.RequestID, e.RequestID, seal.ErrAnswerMismatch)
	}
	ok = append(ok, "receipt signed by the worker for request "+r.RequestID)
	rec, err := r.CheckRecord(e.UsageRecord)
	if err != nil {
		return ok, err
	}
	ok = append(ok, fmt.Sprintf("usage record signed by the worker: %d prompt, %d completion tokens", rec.Usage.PromptTokens, rec.Usage.CompletionTokens))
	if request != nil {
		if h := seal.Digest(sha256.Sum256(request)); h != r.BodyHash {
			return ok, fmt.Errorf("request body hash %s, the receipt names %s: %w", h, r.BodyHash, seal.ErrAnswerMismatch)
		}
		ok = append(ok, "request body is the one the receipt names")
	}
	if answer != nil {
		worker, err := workerAnswer(answer, e.Stream, e.ChargedNanoTON)
		if err != nil {
			return ok, err
		}
		if h := seal.Digest(sha256.Sum256(worker)); h != r.AnswerHash {
			return ok, fmt.Errorf("answer hash %s, the receipt names %s: %w", h, r.AnswerHash, seal.ErrAnswerMismatch)
		}
		ok = append(ok, "answer is the one the worker sealed")
	}
	return ok, nil
}

// workerAnswer is the answer as the worker sealed it, from the answer as the client served it: a
// JSON body, or the data payloads of an event stream up to [DONE], with the total_cost the client
// added to the usage object taken out again (withCost, exactly inverted).
func workerAnswer(served []byte, stream bool, cost uint64) ([]byte, error) {
	if !stream {
		return withoutCost(served, cost), nil
	}
	r := gpu.NewSSEReader(bytes.NewReader(served), 0)
	var out []byte
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("answer: %w", err)
		}
		out = append(out, withoutCost(p, cost)...)
	}
}

// withoutCost returns the b that withCost turned into served, or served itself when withCost
// added nothing to it.
func withoutCost(served []byte, cost uint64) []byte {
	if cost == 0 {
		return served
	}
	field := []byte(`"total_cost":` + strconv.FormatUint(cost, 10))
	for at := 0; ; {
		i := bytes.Index(served[at:], field)
		if i < 0 {
			return served
		}
		i += at
		for _, start := range []int{i - 1, i} { // with the comma withCost puts before it, or without
			if start < 0 || (start < i && served[start] != ',') {
				continue
			}
			cand := append(append([]byte(nil), served[:start]...), served[i+len(field):]...)
			if bytes.Equal(withCost(cand, cost), served) {
				return cand
			}
		}
		at = i + 1
	}
}
