package worker

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cocoon-network/cocoon/attest/ratls"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/seal"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// errNoLocalCertificate: the connection does not know which certificate this worker presented on
// it, so it cannot name its quote in a seal binding nor sign with its key.
var errNoLocalCertificate = errors.New("the certificate this worker presented on the connection is not known")

// evidence is what a worker signs and binds with on one connection: the key and quote of the
// certificate it presented there, which the proxy verified and shows the client.
type evidence struct {
	signer    ed25519.PrivateKey
	quoteHash seal.Digest
	// opener opens the requests sealed to the certificate's HPKE key and keeps their sessions'
	// secrets; nil when the connection holds no HPKE key.
	opener *seal.PrivateKey
}

// evidences keeps the evidence of the certificates this worker presented, parsed once each: a
// certificate serves every request of its connections for up to a day.
type evidences struct {
	mu     sync.Mutex
	byCert map[*tls.Certificate]evidence
}

// maxEvidences bounds what is kept: the certificates of a day or two of rotations.
const maxEvidences = 8

// of returns the signing key and quote digest of the certificate this worker presented on c.
func (e *evidences) of(c *transport.Conn) (evidence, error) {
	cert := c.LocalCertificate()
	if cert == nil || len(cert.Certificate) == 0 {
		return evidence{}, errNoLocalCertificate
	}
	e.mu.Lock()
	ev, ok := e.byCert[cert]
	e.mu.Unlock()
	if ok {
		return ev, nil
	}
	ev, err := certEvidence(cert)
	if err != nil {
		return evidence{}, err
	}
	if key, ok := c.HPKEKey(); ok {
		if ev.opener, err = seal.FromHPKE(key); err != nil {
			return evidence{}, err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.byCert == nil || len(e.byCert) >= maxEvidences {
		e.byCert = map[*tls.Certificate]evidence{}
	}
	e.byCert[cert] = ev
	return ev, nil
}

func certEvidence(cert *tls.Certificate) (evidence, error) {
	key, ok := cert.PrivateKey.(ed25519.PrivateKey)
	if !ok {
		return evidence{}, fmt.Errorf("certificate key is %T, not Ed25519", cert.PrivateKey)
	}
	rc, err := ratls.ParseCertificate(cert.Certificate[:1], time.Now(), 0)
	if err != nil {
		return evidence{}, fmt.Errorf("own certificate: %w", err)
	}
	return evidence{signer: key, quoteHash: seal.HashQuote(rc.Quote)}, nil
}

// openSealed opens req's sealed body with the HPKE key of the certificate this worker presented
// on the connection, for the binding the request's clear fields and that certificate's quote
// make, and puts the plaintext in req.Body. It returns the sealer of the answer.
func openSealed(ev evidence, req *wire.Request) (*seal.AnswerSealer, error) {
	if ev.opener == nil {
		return nil, errors.New("this connection holds no HPKE key to open sealed requests with")
	}
	body, sealer, err := seal.OpenRequest(ev.opener, seal.Binding{RequestID: req.GetId(), Model: req.GetModel(), QuoteHash: ev.quoteHash}, req.GetSealedBody())
	if err != nil {
		return nil, err
	}
	req.Body, req.SealedBody = body, nil
	return sealer, nil
}

// usageRecord is the signed record of what req used, for Done.
func (w *Worker) usageRecord(ev evidence, req *wire.Request, u settle.Usage) ([]byte, error) {
	r := seal.UsageRecord{RequestID: req.GetId(), Model: w.cfg.Model, WeightsDigest: w.cfg.WeightsDigest, Usage: u}
	if err := r.Sign(ev.signer); err != nil {
		return nil, err
	}
	return r.Marshal()
}

// endSealed signs the answer's receipt, which names record (the signed usage record Done
// carries), and returns the sealed end marker that carries it.
func (w *Worker) endSealed(ev evidence, sealer *seal.AnswerSealer, req *wire.Request, body, record []byte, u settle.Usage) ([]byte, error) {
	r := seal.Receipt{
		RequestID: req.GetId(), Model: w.cfg.Model, WeightsDigest: w.cfg.WeightsDigest,
		QuoteHash: ev.quoteHash, BodyHash: sha256.Sum256(body), AnswerHash: sealer.AnswerHash(), RecordHash: sha256.Sum256(record),
		Usage: u, Time: time.Now(), WorkerKey: ev.signer.Public().(ed25519.PublicKey),
	}
	if err := r.Sign(ev.signer); err != nil {
		return nil, err
	}
	trailer, err := r.Marshal()
	if err != nil {
		return nil, err
	}
	return sealer.End(trailer)
}
