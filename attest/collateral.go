package attest

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cocoon-network/cocoon/config/atomicfile"

	"github.com/google/go-tdx-guest/pcs"
	"github.com/google/go-tdx-guest/verify/trust"
)

// IntelPCSURL is Intel's Provisioning Certification Service: the origin of every collateral URL
// go-tdx-guest asks for. A PCCS base URL replaces it.
const IntelPCSURL = "https://api.trustedservices.intel.com"

// intelRootCRLURL is where the Intel SGX Root CA says its CRL lives.
const intelRootCRLURL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"

// pccsRootCRLPath is where a PCCS serves the root CA CRL.
const pccsRootCRLPath = "/sgx/certification/v4/rootcacrl"

// Collateral responses are small (TCB info ~10 KiB, CRLs a few KiB); the limit stops a hostile server.
const maxCollateralBody = 4 << 20

// A cached response on disk holds one body, base64-encoded in JSON; a bundle holds a platform's
// few documents. The limits keep a damaged or foreign file from being read whole into memory.
const (
	maxEntryFile  = 2 * maxCollateralBody
	maxBundleFile = 16 * maxEntryFile
)

// unknownExpiryTTL is how long a response whose body names no next-update time is kept.
const unknownExpiryTTL = time.Hour

// failureBackoff is how long a failed fetch is not retried, so that an unreachable PCS or PCCS
// costs one timeout, not one per handshake.
const failureBackoff = 30 * time.Second

// CollateralConfig says where Intel collateral comes from.
type CollateralConfig struct {
	// URL is the base of a PCCS or of Intel PCS; "" means Intel PCS (IntelPCSURL).
	URL string
	// Dir keeps every response on disk until its own next-update time; "" keeps them in memory only.
	// A directory written by `cocoon attest collateral fetch` is such a cache.
	Dir string
	// Bundle is a JSON bundle file (see WriteCollateralBundle) whose responses are served read-only.
	Bundle string
	// Offline never uses the network: responses come from Dir or Bundle, even past their
	// next-update time, in which case verification refuses them as expired.
	Offline bool
	// HTTP fetches a URL; nil means HTTPS with a 30-second timeout.
	HTTP trust.HTTPSGetter
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// CollateralGetter serves collateral to go-tdx-guest (it is a trust.HTTPSGetter): from its cache
// while the response is current, else from the PCCS or PCS, keyed by the Intel URL asked for. It
// is safe for concurrent use. It adds no trust: every response is signed, and the verifier checks
// those signatures up to the pinned root.
type CollateralGetter struct {
	base    string
	dir     string
	offline bool
	http    trust.HTTPSGetter
	now     func() time.Time

	mu     sync.Mutex
	mem    map[string]*CollateralEntry
	failed map[string]fetchFailure
}

type fetchFailure struct {
	at  time.Time
	err error
}

// CollateralEntry is one cached response.
type CollateralEntry struct {
	URL        string              `json:"url"`
	Fetched    time.Time           `json:"fetched"`
	NextUpdate time.Time           `json:"next_update"`
	Header     map[string][]string `json:"header,omitempty"`
	Body       []byte              `json:"body"`
}

// NewCollateralGetter returns a getter for cfg.
func NewCollateralGetter(cfg CollateralConfig) (*CollateralGetter, error) {
	g := &CollateralGetter{base: strings.TrimRight(cfg.URL, "/"), dir: cfg.Dir, offline: cfg.Offline, http: cfg.HTTP,
		now: cfg.Now, mem: map[string]*CollateralEntry{}, failed: map[string]fetchFailure{}}
	if g.base == "" {
		g.base = IntelPCSURL
	}
	if !strings.HasPrefix(g.base, "https://") && !strings.HasPrefix(g.base, "http://") {
		return nil, fmt.Errorf("collateral URL %q: want http(s)://host[:port]", cfg.URL)
	}
	if g.http == nil {
		g.http = httpGetter{&http.Client{Timeout: 30 * time.Second}}
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.dir != "" {
		if err := os.MkdirAll(g.dir, 0o755); err != nil && !cfg.Offline {
			return nil, fmt.Errorf("collateral cache: %w", err)
		}
	}
	if cfg.Bundle != "" {
		entries, err := ReadCollateralBundle(cfg.Bundle)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			g.mem[e.URL] = e
		}
	}
	return g, nil
}

// Get returns the response for an Intel collateral URL.
func (g *CollateralGetter) Get(u string) (map[string][]string, []byte, error) {
	now := g.now()
	e := g.cached(u)
	if e != nil && now.Before(e.NextUpdate) {
		return cloneHeader(e.Header), append([]byte(nil), e.Body...), nil
	}
	if g.offline {
		if e != nil {
			return cloneHeader(e.Header), append([]byte(nil), e.Body...), nil
		}
		where := "memory"
		if g.dir != "" {
			where = g.dir
		}
		return nil, nil, fmt.Errorf("offline: no collateral for %s in %s", u, where)
	}
	g.mu.Lock()
	f, recent := g.failed[u]
	g.mu.Unlock()
	var fresh *CollateralEntry
	var err error
	if recent && now.Sub(f.at) < failureBackoff && now.Sub(f.at) >= 0 {
		err = f.err
	} else if fresh, err = g.fetch(u, now); err != nil {
		g.mu.Lock()
		g.failed[u] = fetchFailure{at: now, err: err}
		g.mu.Unlock()
	}
	if err != nil {
		if e != nil {
			// An expired copy beats none: verification then refuses it as expired, which says more
			// than a network error would.
			return cloneHeader(e.Header), append([]byte(nil), e.Body...), nil
		}
		return nil, nil, err
	}
	g.store(fresh)
	return cloneHeader(fresh.Header), append([]byte(nil), fresh.Body...), nil
}

// Fetch gets u from the network into the cache, whatever the cache holds.
func (g *CollateralGetter) Fetch(u string) (*CollateralEntry, error) {
	e, err := g.fetch(u, g.now())
	if err != nil {
		return nil, err
	}
	g.store(e)
	return e, nil
}

// Entries returns every response in memory (those served or fetched so far, and the bundle's).
func (g *CollateralGetter) Entries() []*CollateralEntry {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*CollateralEntry, 0, len(g.mem))
	for _, e := range g.mem {
		out = append(out, e)
	}
	return out
}

func (g *CollateralGetter) cached(u string) *CollateralEntry {
	g.mu.Lock()
	e := g.mem[u]
	g.mu.Unlock()
	if e != nil || g.dir == "" {
		return e
	}
	b, err := readBounded(filepath.Join(g.dir, cacheFileName(u)), maxEntryFile)
	if err != nil {
		return nil
	}
	disk, err := parseCollateralEntry(b)
	if err != nil || disk.URL != u {
		return nil // a damaged or colliding file is fetched again
	}
	g.mu.Lock()
	g.mem[u] = disk
	g.mu.Unlock()
	return disk
}

func (g *CollateralGetter) store(e *CollateralEntry) {
	g.mu.Lock()
	g.mem[e.URL] = e
	delete(g.failed, e.URL)
	g.mu.Unlock()
	if g.dir == "" {
		return
	}
	b, err := json.MarshalIndent(e, "", "  ")
	if err == nil {
		// A cache that cannot be written only costs a fetch next time.
		_ = atomicfile.Write(filepath.Join(g.dir, cacheFileName(e.URL)), b, 0o644)
	}
}

// fetch gets u from the configured service and works out how long the answer is good for.
func (g *CollateralGetter) fetch(u string, now time.Time) (*CollateralEntry, error) {
	target := g.rewrite(u)
	hdr, body, err := g.http.Get(target)
	if err != nil {
		return nil, fmt.Errorf("%w: fetch %s: %v", ErrCollateralUnavailable, target, err)
	}
	e := &CollateralEntry{URL: u, Fetched: now.UTC(), Header: map[string][]string{}, Body: body}
	for k, v := range hdr {
		// Keep what go-tdx-guest reads (the issuer chains), under the key it looks up.
		if strings.HasSuffix(strings.ToLower(k), "-issuer-chain") {
			e.Header[textproto.CanonicalMIMEHeaderKey(k)] = v
		}
	}
	if isCRLURL(u) {
		e.Body = crlDER(body)
	}
	e.NextUpdate = nextUpdateOf(u, e.Body, now)
	return e, nil
}

// rewrite points an Intel URL at the configured service. A PCCS serves the root CA CRL itself.
func (g *CollateralGetter) rewrite(u string) string {
	if g.base == IntelPCSURL {
		return u
	}
	if rest, ok := strings.CutPrefix(u, IntelPCSURL); ok {
		return g.base + rest
	}
	if u == intelRootCRLURL {
		return g.base + pccsRootCRLPath
	}
	return u
}

func isCRLURL(u string) bool {
	return strings.Contains(u, "/pckcrl?") || u == intelRootCRLURL || strings.HasSuffix(u, ".crl") || strings.HasSuffix(u, ".der")
}

// crlDER accepts the DER that PCS sends and the hex-encoded DER some PCCS versions send.
func crlDER(body []byte) []byte {
	if _, err := x509.ParseRevocationList(body); err == nil {
		return body
	}
	if der, err := hex.DecodeString(strings.TrimSpace(string(body))); err == nil {
		if _, err := x509.ParseRevocationList(der); err == nil {
			return der
		}
	}
	return body
}

// nextUpdateOf reads the next-update time a response carries: tcbInfo.nextUpdate,
// enclaveIdentity.nextUpdate or the CRL's NextUpdate.
func nextUpdateOf(u string, body []byte, now time.Time) time.Time {
	if isCRLURL(u) {
		if l, err := x509.ParseRevocationList(body); err == nil && !l.NextUpdate.IsZero() {
			return l.NextUpdate
		}
		return now.Add(unknownExpiryTTL)
	}
	var v struct {
		TCBInfo *struct {
			NextUpdate time.Time `json:"nextUpdate"`
		} `json:"tcbInfo"`
		EnclaveIdentity *struct {
			NextUpdate time.Time `json:"nextUpdate"`
		} `json:"enclaveIdentity"`
	}
	if json.Unmarshal(body, &v) == nil {
		switch {
		case v.TCBInfo != nil && !v.TCBInfo.NextUpdate.IsZero():
			return v.TCBInfo.NextUpdate
		case v.EnclaveIdentity != nil && !v.EnclaveIdentity.NextUpdate.IsZero():
			return v.EnclaveIdentity.NextUpdate
		}
	}
	return now.Add(unknownExpiryTTL)
}

func cacheFileName(u string) string {
	h := sha256.Sum256([]byte(u))
	return hex.EncodeToString(h[:12]) + ".json"
}

func cloneHeader(h map[string][]string) map[string][]string {
	out := make(map[string][]string, len(h))
	for k, v := range h {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// CollateralURLs are the Intel URLs go-tdx-guest asks for when it verifies a quote of a platform
// with this FMSPC whose PCK certificate was issued by ca ("platform" or "processor").
func CollateralURLs(fmspc, ca string) []string {
	return []string{pcs.TcbInfoURL(fmspc), pcs.QeIdentityURL(), pcs.PckCrlURL(ca), intelRootCRLURL}
}

// ReadCollateralBundle reads a bundle file, or every entry of a cache directory.
func ReadCollateralBundle(path string) ([]*CollateralEntry, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read collateral bundle: %w", err)
	}
	if !st.IsDir() {
		b, err := readBounded(path, maxBundleFile)
		if err != nil {
			return nil, fmt.Errorf("read collateral bundle: %w", err)
		}
		entries, err := parseCollateralBundle(b)
		if err != nil {
			return nil, fmt.Errorf("read collateral bundle %s: %w", path, err)
		}
		return entries, nil
	}
	var entries []*CollateralEntry
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".json" {
			return err
		}
		b, err := readBounded(p, maxEntryFile)
		if err != nil {
			return err
		}
		if e, err := parseCollateralEntry(b); err == nil {
			entries = append(entries, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read collateral directory: %w", err)
	}
	return entries, nil
}

// parseCollateralBundle parses a bundle file's JSON: an array of entries, each with a URL.
func parseCollateralBundle(b []byte) ([]*CollateralEntry, error) {
	var entries []*CollateralEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, err
	}
	for i, e := range entries {
		if e == nil || e.URL == "" {
			return nil, fmt.Errorf("entry %d: no URL", i)
		}
	}
	return entries, nil
}

// parseCollateralEntry parses one cached response as the disk cache stores it.
func parseCollateralEntry(b []byte) (*CollateralEntry, error) {
	var e CollateralEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, err
	}
	if e.URL == "" {
		return nil, errors.New("no URL")
	}
	return &e, nil
}

// readBounded reads a file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

// WriteCollateralBundle writes entries to one JSON file, for copying to a machine without network.
func WriteCollateralBundle(path string, entries []*CollateralEntry) error {
	b, err := json.MarshalIndent(entries, "", "  ")
	if err != nil {
		return fmt.Errorf("write collateral bundle: %w", err)
	}
	return atomicfile.Write(path, b, 0o644)
}

// httpGetter fetches over HTTP(S) with a timeout and a size limit.
type httpGetter struct{ c *http.Client }

func (g httpGetter) Get(u string) (map[string][]string, []byte, error) {
	resp, err := g.c.Get(u) //nolint:noctx // the client timeout bounds it; trust.HTTPSGetter has no context
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCollateralBody+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("%s: HTTP %s", u, resp.Status)
	}
	if len(body) > maxCollateralBody {
		return nil, nil, errors.New(u + ": response too large")
	}
	return resp.Header, body, nil
}
