package client

import (
	"crypto/sha256"
	"errors"
	"sync"
	"time"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/ratls"
	"github.com/cocoon-network/cocoon/transport/seal"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// sessionLifetime is how long the client seals to one worker key in one session
// (seal.Session): a session's secret opens all its requests, so it is renewed; each renewal costs
// one KEM encapsulation here and one decapsulation at the worker.
const sessionLifetime = 10 * time.Minute

// maxOfferedWorkers bounds the workers' certificates the client keeps parsed: a proxy offers the
// few workers of a model again and again, each certificate for a day.
const maxOfferedWorkers = 256

// offeredWorker is a worker certificate a proxy offered, parsed once: its structure checked, its
// evidence, its quote's digest and, once a verification named it, its HPKE key ready to seal to.
type offeredWorker struct {
	der       []byte // kept once, shared by the receipts of every answer it sealed
	ev        attest.Evidence
	quoteHash seal.Digest
	notAfter  time.Time

	keyOnce sync.Once
	key     *seal.PublicKey
	keyErr  error

	mu        sync.Mutex
	session   *seal.Session
	sessionAt time.Time // when session was made
}

// sealSession is the session the client seals to w's key in at now, made again once it is
// sessionLifetime old.
func (w *offeredWorker) sealSession(pub *seal.PublicKey, now time.Time) (*seal.Session, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.session != nil && now.Sub(w.sessionAt) < sessionLifetime && !now.Before(w.sessionAt) {
		return w.session, nil
	}
	s, err := seal.NewSession(pub)
	if err != nil {
		return nil, err
	}
	w.session, w.sessionAt = s, now
	return s, nil
}

// hpkeKey is the HPKE key the verified claims of w name, parsed once.
func (w *offeredWorker) hpkeKey(peer *attest.Peer) (*seal.PublicKey, error) {
	w.keyOnce.Do(func() {
		hk, err := peer.Claims.HPKEPublicKey()
		if err != nil {
			w.keyErr = errors.New("worker offers no HPKE key to seal to: " + err.Error())
			return
		}
		if w.key, err = seal.ParsePublicKey(hk.Bytes()); err != nil {
			w.keyErr = errors.New("worker's HPKE key: " + err.Error())
		}
	})
	return w.key, w.keyErr
}

// offers keeps the parsed certificates of the workers proxies offered, by the certificate's
// digest, and the worker each proxy last answered a model's request with, for presealing.
type offers struct {
	mu   sync.Mutex
	byID map[[32]byte]*offeredWorker
	last map[lastKey]lastWorker
}

// lastKey and lastWorker: the worker (and what its proxy said of it) that proxy answered the
// model's last sealed request with. The next request to that proxy is presealed to it, and the
// proxy, when it picks that worker, forwards it without an offer and its round trip.
type lastKey struct{ proxy, model string }

type lastWorker struct {
	w    *offeredWorker
	info *wire.WorkerInfo
}

// maxLastWorkers bounds what is remembered for presealing: a proxy and model pair each.
const maxLastWorkers = 256

// remember keeps w as the worker proxy answered model with.
func (o *offers) remember(proxy, model string, w *offeredWorker, info *wire.WorkerInfo) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.last == nil || len(o.last) >= maxLastWorkers {
		o.last = map[lastKey]lastWorker{}
	}
	o.last[lastKey{proxy, model}] = lastWorker{w: w, info: info}
}

// lastFor is the worker proxy last answered model with, while its certificate is valid at now.
func (o *offers) lastFor(proxy, model string, now time.Time) (lastWorker, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l, ok := o.last[lastKey{proxy, model}]
	if !ok || !now.Before(l.w.notAfter) {
		delete(o.last, lastKey{proxy, model})
		return lastWorker{}, false
	}
	return l, true
}

// forget drops what lastFor would return, when the client no longer accepts that worker.
func (o *offers) forget(proxy, model string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.last, lastKey{proxy, model})
}

// parse returns the offered certificate der, parsed and checked at now (once per certificate).
func (o *offers) parse(der []byte, now time.Time, maxValidity time.Duration) (*offeredWorker, error) {
	id := sha256.Sum256(der)
	o.mu.Lock()
	w := o.byID[id]
	o.mu.Unlock()
	if w != nil && now.Before(w.notAfter) {
		return w, nil
	}
	rc, err := ratls.ParseCertificate([][]byte{der}, now, maxValidity)
	if err != nil {
		return nil, err
	}
	w = &offeredWorker{der: append([]byte(nil), der...), ev: rc.Evidence(), quoteHash: seal.HashQuote(rc.Quote), notAfter: rc.X509.NotAfter}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.byID == nil {
		o.byID = map[[32]byte]*offeredWorker{}
	}
	if len(o.byID) >= maxOfferedWorkers {
		for k, e := range o.byID {
			if !now.Before(e.notAfter) {
				delete(o.byID, k)
			}
		}
		if len(o.byID) >= maxOfferedWorkers {
			clear(o.byID)
		}
	}
	o.byID[id] = w
	return w, nil
}
