package client

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/transport/seal"
)

// receiptPath is where the client serves a request's receipt, by request id; answers name it in
// their X-Cocoon-Receipt header.
const receiptPath = "/v1/cocoon/receipts/"

// Receipt is what the client keeps of one sealed answer, and serves as JSON: the worker's signed
// receipt and usage record, the certificate of the worker that signed them (its quote inside), and
// what the proxy charged for it, checked against the signed usage at the registry's prices.
// `cocoon receipt verify` checks one offline (VerifyReceipt).
type Receipt struct {
	RequestID string `json:"request_id"`
	Model     string `json:"model"`
	Stream    bool   `json:"stream"`
	Proxy     string `json:"proxy"`
	// Receipt is the worker's signed receipt: hashes of the body and of the answer, usage, time.
	Receipt *seal.Receipt `json:"receipt"`
	// UsageRecord is the worker's signed usage record, as the proxy charged by it.
	UsageRecord []byte `json:"usage_record"`
	// WorkerCertificate is the worker's RA-TLS certificate (DER): its quote, claims and key.
	WorkerCertificate []byte `json:"worker_certificate"`
	Coefficient       uint32 `json:"coefficient"`
	// ChargedNanoTON is what the proxy charged; PricedNanoTON what the signed usage costs at the
	// registry's prices and the coefficient (absent when the prices are not known).
	ChargedNanoTON uint64  `json:"charged_nanoton"`
	PricedNanoTON  *uint64 `json:"priced_nanoton,omitempty"`
	// ChargeCheck is "ok", "free" (no payments), "prices unknown", or what disagrees.
	ChargeCheck string    `json:"charge_check"`
	KeptAt      time.Time `json:"kept_at"`
}

// receipts keeps the latest receipts by request id, the oldest dropped first, and counts what the
// end-to-end checks found.
type receipts struct {
	checked, refused, badAnswers, mismatches atomic.Uint64

	mu          sync.Mutex
	lastRefusal string
	max         int
	byID        map[string]*Receipt
	order       []string // ring of ids, oldest at next
	next        int
}

func newReceipts(n int) *receipts {
	return &receipts{max: n, byID: make(map[string]*Receipt, min(n, 1024))}
}

func (r *receipts) add(e *Receipt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.byID[e.RequestID]; dup {
		r.byID[e.RequestID] = e
		return
	}
	if len(r.order) < r.max {
		r.order = append(r.order, e.RequestID)
	} else {
		delete(r.byID, r.order[r.next])
		r.order[r.next] = e.RequestID
		r.next = (r.next + 1) % r.max
	}
	r.byID[e.RequestID] = e
}

func (r *receipts) get(id string) *Receipt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id]
}

// all returns the kept receipts, for tests and totals.
func (r *receipts) all() []*Receipt {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Receipt, 0, len(r.byID))
	for _, e := range r.byID {
		out = append(out, e)
	}
	return out
}

// keepReceipt keeps the receipt of the answer that just ended with a verified Done, and checks
// what the proxy charged against the usage the worker signed.
func (x *call) keepReceipt(signed settle.Usage) {
	sl := x.sealed
	e := &Receipt{RequestID: x.id, Model: x.model, Stream: x.stream, Proxy: x.proxy, Receipt: sl.receipt,
		UsageRecord: x.done.GetUsageRecord(), WorkerCertificate: sl.cert, Coefficient: sl.info.GetCoefficient(),
		ChargedNanoTON: x.done.GetTotalCost(), KeptAt: time.Now()}
	e.ChargeCheck = x.c.checkCharge(e, signed)
	x.c.receipts.checked.Add(1)
	if e.ChargeCheck != "ok" && e.ChargeCheck != "free" && e.ChargeCheck != "prices unknown" {
		x.c.receipts.mismatches.Add(1)
		x.c.log.Warn().Str("request_id", x.id).Str("proxy", x.proxy).Str("check", e.ChargeCheck).
			Msg("the proxy's charge disagrees with the worker's signed usage")
	}
	x.c.receipts.add(e)
}

// checkCharge compares the charge with the signed usage priced at the registry's prices.
func (c *Client) checkCharge(e *Receipt, signed settle.Usage) string {
	if c.cfg.Prices == nil {
		if e.ChargedNanoTON == 0 {
			return "free"
		}
		return "prices unknown"
	}
	p, ok := c.cfg.Prices()
	if !ok {
		return "prices unknown"
	}
	if c.cfg.MaxCoefficient != 0 && e.Coefficient > c.cfg.MaxCoefficient {
		return fmt.Sprintf("coefficient %d is above max_coefficient %d", e.Coefficient, c.cfg.MaxCoefficient)
	}
	priced, err := settle.Cost(signed, p, e.Coefficient)
	if err != nil {
		return "signed usage cannot be priced: " + err.Error()
	}
	e.PricedNanoTON = &priced
	if priced != e.ChargedNanoTON {
		return fmt.Sprintf("charged %d nanoTON, the signed usage prices to %d", e.ChargedNanoTON, priced)
	}
	return "ok"
}

// refusedWorker counts a worker the client's policy refused.
func (r *receipts) refusedWorker(reason string) {
	r.refused.Add(1)
	r.mu.Lock()
	r.lastRefusal = reason
	r.mu.Unlock()
}

func (c *Client) sealingStats() sealingStats {
	r := c.receipts
	s := sealingStats{Mode: "sealed", Receipts: r.checked.Load(), WorkersRefused: r.refused.Load(),
		AnswersRefused: r.badAnswers.Load(), ChargeMismatches: r.mismatches.Load()}
	if c.cfg.PlaintextDev {
		s.Mode = "plaintext_dev"
	}
	r.mu.Lock()
	s.ReceiptsKept, s.LastRefusal = len(r.byID), r.lastRefusal
	r.mu.Unlock()
	return s
}

// serveReceipt answers GET /v1/cocoon/receipts/{id}.
func (c *Client) serveReceipt(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	e := c.receipts.get(id)
	if e == nil {
		writeError(w, newError(http.StatusNotFound, "invalid_request_error", "receipt_not_found",
			fmt.Sprintf("no receipt for request %q: it was not sealed, has not ended, or is older than the last %d kept (client.receipts_kept)", id, c.cfg.ReceiptsKept)))
		return
	}
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		writeError(w, newError(http.StatusInternalServerError, "server_error", "internal_error", "encode receipt"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

// Receipts returns the receipts kept, in no order.
func (c *Client) Receipts() []*Receipt { return c.receipts.all() }
