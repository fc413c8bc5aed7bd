package client

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/transport/seal"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// sealed is one attempt's end-to-end state: the worker the client verified and sealed the body
// to, and the opener of its answer. The proxy between them relays ciphertext.
type sealed struct {
	worker    *attest.Peer
	offered   *offeredWorker
	cert      []byte // the worker's RA-TLS certificate, as offered
	info      *wire.WorkerInfo
	quoteHash seal.Digest
	opener    *seal.AnswerOpener
	receipt   *seal.Receipt // from the answer's end marker, verified
}

// errSealedAnswer: the sealed answer or its proof did not check out; the proxy or something
// behind it changed, dropped, reordered, replayed or cut what the worker sent.
var errSealedAnswer = errors.New("sealed answer refused")

// acceptOffer verifies the offered worker with the client's own policy (the same verifier, policy
// and registry lists the client trusts proxies by) and seals the body to the HPKE key its attested
// claims name. refusal says why the worker is refused, for the proxy to try another.
func (x *call) acceptOffer(o *wire.WorkerOffer) (s *sealed, body []byte, refusal string) {
	tc := x.c.tc
	w, err := x.c.offers.parse(o.GetCertificate(), tc.Now(), tc.MaxCertValidity)
	if err != nil {
		return nil, nil, "worker certificate: " + err.Error()
	}
	return x.sealTo(w, o.GetWorker())
}

// sealTo verifies worker w, offered now or for an earlier request, with the client's policy and
// seals the body to it. info is what its proxy said of it.
func (x *call) sealTo(w *offeredWorker, info *wire.WorkerInfo) (s *sealed, body []byte, refusal string) {
	tc := x.c.tc
	// Verified each time: the verifier caches the quote's verification, and judges the policy
	// (and registry lists) as they are now.
	peer, err := tc.Verifier.Verify(w.ev)
	if err != nil {
		return nil, nil, "worker attestation: " + err.Error()
	}
	if peer.Claims.Role != attest.RoleWorker {
		return nil, nil, fmt.Sprintf("offered a %s certificate, not a worker's", peer.Claims.Role)
	}
	if peer.Claims.Model != x.model {
		return nil, nil, fmt.Sprintf("worker serves model %q, the request is for %q", peer.Claims.Model, x.model)
	}
	if c := info.GetCoefficient(); x.c.cfg.MaxCoefficient != 0 && c > x.c.cfg.MaxCoefficient {
		return nil, nil, fmt.Sprintf("worker's coefficient %d is above this client's max_coefficient %d", c, x.c.cfg.MaxCoefficient)
	}
	pub, err := w.hpkeKey(peer)
	if err != nil {
		return nil, nil, err.Error()
	}
	session, err := w.sealSession(pub, tc.Now())
	if err != nil {
		return nil, nil, "sealing the body: " + err.Error()
	}
	s = &sealed{worker: peer, offered: w, cert: w.der, info: info, quoteHash: w.quoteHash}
	body, s.opener, err = session.SealRequest(seal.Binding{RequestID: x.id, Model: x.model, QuoteHash: s.quoteHash}, x.body)
	if err != nil {
		return nil, nil, "sealing the body: " + err.Error()
	}
	return s, body, ""
}

// open opens one sealed answer frame in place (it is the stream's read buffer, used before the
// next frame is read): the plaintext chunk, or nil for the end marker (whose receipt it then
// verifies).
func (s *sealed) open(frame []byte) ([]byte, error) {
	p, err := s.opener.OpenInPlace(frame)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errSealedAnswer, err)
	}
	return p, nil
}

// finish checks, once Done arrived, that the sealed answer ended with its end marker and that
// the worker's receipt, signed with the key of the worker the client verified, names this
// request, its body, its whole answer as the client opened it, and the usage record Done
// carries. It returns the usage the worker signed.
func (s *sealed) finish(x *call, done *wire.Done) (settle.Usage, error) {
	if err := s.opener.Done(); err != nil {
		return settle.Usage{}, fmt.Errorf("%w: %w", errSealedAnswer, err)
	}
	key := s.worker.Claims.PublicKey
	r, err := seal.ParseReceipt(s.opener.Trailer())
	if err != nil {
		return settle.Usage{}, fmt.Errorf("%w: receipt: %w", errSealedAnswer, err)
	}
	if !bytes.Equal(r.WorkerKey, key) {
		return settle.Usage{}, fmt.Errorf("%w: receipt names another key than the worker's: %w", errSealedAnswer, seal.ErrSignature)
	}
	if err := r.Verify(key); err != nil {
		return settle.Usage{}, fmt.Errorf("%w: %w", errSealedAnswer, err)
	}
	switch {
	case r.RequestID != x.id:
		return settle.Usage{}, fmt.Errorf("%w: receipt is for request %q", errSealedAnswer, r.RequestID)
	case r.QuoteHash != s.quoteHash:
		return settle.Usage{}, fmt.Errorf("%w: receipt names another quote than the worker's", errSealedAnswer)
	case r.Model != x.model:
		return settle.Usage{}, fmt.Errorf("%w: receipt names model %q", errSealedAnswer, r.Model)
	}
	if err := r.CheckHashes(sha256.Sum256(x.body), s.opener.AnswerHash()); err != nil {
		return settle.Usage{}, fmt.Errorf("%w: %w", errSealedAnswer, err)
	}
	rec, err := r.CheckRecord(done.GetUsageRecord())
	if err != nil {
		return settle.Usage{}, fmt.Errorf("%w: usage record: %w", errSealedAnswer, err)
	}
	s.receipt = r
	return rec.Usage, nil
}

func (x *call) errSealed(err error) *apiError {
	x.c.receipts.badAnswers.Add(1)
	x.c.log.Warn().Str("request_id", x.id).Str("proxy", x.proxy).Err(err).Msg("sealed answer refused")
	return newError(http.StatusBadGateway, "server_error", "sealed_answer_refused",
		err.Error()+": the answer did not come unchanged from the worker the client verified; retry, and report the proxy if it repeats")
}

func errWorkersRefused(reason string) *apiError {
	return newError(http.StatusBadGateway, "server_error", "worker_refused",
		"this client's attestation policy refused the worker the proxy offered: "+reason+
			"; check attestation.policy and the registry's worker lists")
}

// workerInfo is what the app is told of the worker: its image and model from its verified
// attestation; only the coefficient, which the proxy prices by, is as the proxy offered it.
func (s *sealed) workerInfo() *wire.WorkerInfo {
	return &wire.WorkerInfo{ImageHash: s.worker.ImageHash.String(), Attestation: s.worker.Label(),
		WeightsDigest: s.worker.Claims.WeightsDigest, Coefficient: s.info.GetCoefficient()}
}
