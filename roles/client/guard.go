package client

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
)

// guard keeps web pages from spending the client's deposit. A page can make the browser send a
// request to the local API without asking first (a CORS "simple request": text/plain or form
// bodies), and with DNS rebinding it can read the answers too. So the API refuses Host names that
// are not this machine's (rebinding always brings a name the attacker controls) and Origins of
// pages other than loopback ones or those configured; browsers send Origin on every POST.
type guard struct {
	listenHost string // the host of the listen address, as a Host name or Origin host
	anyOrigin  bool
	origins    map[string]bool // configured origins, lowercase, with CORS
	anyHost    bool
	hosts      map[string]bool // configured Host names, lowercase
}

func newGuard(cfg *Config) (*guard, error) {
	g := &guard{origins: map[string]bool{}, hosts: map[string]bool{}}
	if h, _, err := net.SplitHostPort(cfg.Listen); err == nil {
		g.listenHost = hostName(h)
	}
	for i, o := range cfg.AllowedOrigins {
		if o == "*" {
			g.anyOrigin = true
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
			return nil, fmt.Errorf("client config: allowed_origins[%d]: %q is not an origin like https://app.example.com, or *", i, o)
		}
		g.origins[strings.ToLower(u.Scheme+"://"+u.Host)] = true
	}
	for i, h := range cfg.AllowedHosts {
		if h == "*" {
			g.anyHost = true
			continue
		}
		name := hostName(h)
		_, _, portErr := net.SplitHostPort(h)
		if name == "" || portErr == nil || strings.ContainsAny(name, "/@ ") || (strings.Contains(name, ":") && net.ParseIP(name) == nil) {
			return nil, fmt.Errorf("client config: allowed_hosts[%d]: %q is not a host name without a port, or *", i, h)
		}
		g.hosts[name] = true
	}
	return g, nil
}

// hostName is the name part of a Host header or an address host: no port, no brackets, no
// trailing dot, lowercase.
func hostName(h string) string {
	if name, _, err := net.SplitHostPort(h); err == nil {
		h = name
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// local says whether name is this machine for certain: localhost, a loopback IP or the listen host.
func (g *guard) local(name string) bool {
	if name == "localhost" || (g.listenHost != "" && name == g.listenHost) {
		return true
	}
	ip := net.ParseIP(name)
	return ip != nil && ip.IsLoopback()
}

// hostAllowed checks the Host header. An IP literal equal to the address the connection arrived
// on is allowed too: no DNS is involved, so nothing can be rebound.
func (g *guard) hostAllowed(r *http.Request) bool {
	name := hostName(r.Host)
	if g.anyHost || name == "" || g.local(name) || g.hosts[name] {
		return true
	}
	la, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	ip := net.ParseIP(name)
	return ok && ip != nil && ip.Equal(la.IP)
}

// origin decides on the Origin header: allowed or not, and whether the answer carries CORS
// headers (only for configured origins: a page on loopback may send, not read across origins).
func (g *guard) origin(origin string) (allowed, cors bool) {
	if origin == "" {
		return true, false
	}
	if g.anyOrigin || g.origins[strings.ToLower(origin)] {
		return true, true
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false, false // "null" (sandboxed or file pages), extensions, garbage
	}
	return g.local(hostName(u.Host)), false
}

// exposed are the answer headers a configured page's script may read.
const exposed = "X-Request-Id, X-Cocoon-Request-Id, X-Cocoon-Model, X-Cocoon-Worker-Image, X-Cocoon-Attestation, " +
	"X-Cocoon-Worker-Coefficient, X-Cocoon-Proxy, X-Cocoon-Time-To-Head-Ms, Retry-After"

// protect refuses foreign Host names and Origins, answers CORS preflights of configured origins,
// and adds CORS headers to their answers.
func (c *Client) protect(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.admit(w, r) {
			h.ServeHTTP(w, r)
		}
	})
}

// admit reports whether r goes on to its handler: it refuses a foreign Host or Origin, answers a
// CORS preflight, and adds CORS headers for a configured origin (see authorized on why it is
// not inlined).
//
//go:noinline
func (c *Client) admit(w http.ResponseWriter, r *http.Request) bool {
	g := c.guard
	if !g.hostAllowed(r) {
		c.refused("host", hostName(r.Host))
		writeError(w, newError(http.StatusForbidden, "invalid_request_error", "host_not_allowed",
			fmt.Sprintf("Host %q is not this machine's address and may be DNS rebinding: call the API at "+
				"127.0.0.1 or localhost, or add the name to client.allowed_hosts", hostName(r.Host))))
		return false
	}
	origin := r.Header.Get("Origin")
	allowed, cors := g.origin(origin)
	if !allowed {
		c.refused("origin", origin)
		writeError(w, newError(http.StatusForbidden, "invalid_request_error", "origin_not_allowed",
			fmt.Sprintf("requests from the web page origin %q are refused, since a page could spend this "+
				"client's funds: to allow that page, add its origin to client.allowed_origins", origin)))
		return false
	}
	if cors {
		hd := w.Header()
		hd.Set("Access-Control-Allow-Origin", origin)
		hd.Add("Vary", "Origin")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			hd.Set("Access-Control-Allow-Methods", "GET, POST")
			if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
				hd.Set("Access-Control-Allow-Headers", req)
			}
			hd.Set("Access-Control-Max-Age", strconv.Itoa(600))
			w.WriteHeader(http.StatusNoContent)
			return false
		}
		hd.Set("Access-Control-Expose-Headers", exposed)
	}
	return true
}

// refused counts a refusal by protect and says, at most once a minute at warn, what was refused:
// the operator of a page or a name that should be let in learns which setting to change.
func (c *Client) refused(what, value string) {
	c.stats.outcome("forbidden")
	lvl := zerolog.DebugLevel
	if c.guardWarn.allow() {
		lvl = zerolog.WarnLevel
	}
	c.log.WithLevel(lvl).Str(what, value).Msg("refused a request from a foreign " + what +
		": client.allowed_origins and client.allowed_hosts admit more")
}

// jsonBody says whether a request's Content-Type is JSON. None at all is accepted (plain HTTP
// libraries send none, and no browser sends a body without an Origin, which protect checks);
// any other type is what a page's form or text/plain request would carry.
func jsonBody(contentType string) bool {
	if contentType == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

func errContentType(contentType string) *apiError {
	return newError(http.StatusUnsupportedMediaType, "invalid_request_error", "unsupported_media_type",
		fmt.Sprintf("Content-Type %q is not accepted: send the JSON body with Content-Type: application/json", contentType))
}
