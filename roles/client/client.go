package client

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/roles/internal/proxyset"
	"github.com/cocoon-network/cocoon/roles/internal/redial"
	"github.com/cocoon-network/cocoon/roles/internal/statsweb"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/paystate"
	"github.com/cocoon-network/cocoon/transport"
)

// Defaults for zero Config fields.
const (
	DefaultMaxBodyBytes   = 4 << 20
	DefaultRequestTimeout = 10 * time.Minute
	DefaultMaxBodiesBytes = 64 << 20
	DefaultMaxConnections = 10000
	DefaultReceiptsKept   = 1000
)

// Config configures a Client. Zero values take the documented defaults.
type Config struct {
	Proxies []string // proxy QUIC addresses host:port: the first set (SetProxies replaces it); at least one unless Discover
	// Discover says the proxies come from SetProxies (the registry), so Proxies may be empty.
	Discover bool
	// MaxProxies is how many of the proxies the client connects to at once, those with the lowest
	// round-trip time (measured with a probe); 0 = all of them.
	MaxProxies     int
	Listen         string        // HTTP listen address for the OpenAI API and /healthz, /stats, /jsonstats
	APIToken       string        // optional: require "Authorization: Bearer <token>" on /v1/*, /stats, /jsonstats
	MaxBodyBytes   int64         // request body limit; 0 = 4 MiB
	MaxCoefficient uint32        // highest worker price coefficient accepted (1000 = 1.0x); 0 = any (config default: 2000)
	RequestTimeout time.Duration // whole-request timeout; 0 = 10m
	// MaxBodiesBytes bounds the request bodies being read or held, all connections together; a
	// request that would go over waits briefly, then gets 503. 0 = 64 MiB; at least MaxBodyBytes.
	MaxBodiesBytes int64
	MaxConnections int // open API connections; more wait to be accepted. 0 = 10000
	// AllowedOrigins are the browser origins ("https://app.example.com", "*" for any) that may call
	// the API, with CORS, besides pages on loopback or the listen host; other origins are refused.
	AllowedOrigins []string
	// AllowedHosts are Host names ("*" for any) answered besides localhost, loopback IPs, the
	// listen host and the address a connection arrived on; other names may be DNS rebinding.
	AllowedHosts []string
	// States keeps the latest "charged" state each proxy signed; nil when payments are off.
	States *paystate.Store
	// PlaintextDev sends request bodies to the proxy in clear. Development only: by default each
	// body is sealed to the attested worker the proxy offers, which the client verifies itself.
	PlaintextDev bool
	// ReceiptsKept is how many answers' receipts are kept to serve; 0 = 1000 (each a few hundred bytes; the workers' certificates are shared).
	ReceiptsKept int
	// Prices are the registry's current prices, to check each charge against the worker's signed
	// usage; nil or !ok: unknown (charges are kept with their receipts, unchecked).
	Prices func() (settle.Prices, bool)
}

func (c *Config) validate() error {
	if len(c.Proxies) == 0 && !c.Discover {
		return errors.New("client config: proxies: at least one proxy address is required")
	}
	if err := proxyset.Validate("proxies", proxyset.Static(c.Proxies)); err != nil {
		return fmt.Errorf("client config: %w", err)
	}
	if c.MaxProxies < 0 {
		return fmt.Errorf("client config: max_proxies: %d is negative", c.MaxProxies)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("client config: listen: %q is not host:port", c.Listen)
	}
	if c.MaxBodyBytes < 0 {
		return fmt.Errorf("client config: max_body_bytes: %d is negative", c.MaxBodyBytes)
	}
	if c.RequestTimeout < 0 {
		return fmt.Errorf("client config: request_timeout: %s is negative", c.RequestTimeout)
	}
	body := c.MaxBodyBytes
	if body == 0 {
		body = DefaultMaxBodyBytes
	}
	if c.MaxBodiesBytes < 0 || (c.MaxBodiesBytes != 0 && c.MaxBodiesBytes < body) {
		return fmt.Errorf("client config: max_bodies_bytes: %d is below one body's limit (max_body_bytes)", c.MaxBodiesBytes)
	}
	if c.MaxConnections < 0 {
		return fmt.Errorf("client config: max_connections: %d is negative", c.MaxConnections)
	}
	if c.ReceiptsKept < 0 {
		return fmt.Errorf("client config: receipts_kept: %d is negative", c.ReceiptsKept)
	}
	return nil
}

// Client serves the OpenAI-compatible API and relays requests to proxies.
type Client struct {
	cfg      Config
	tc       transport.Config
	log      zerolog.Logger
	set      *proxyset.Set[*proxy] // the proxies connected to
	stats    *stats
	started  time.Time
	guard    *guard
	bodies   *budget
	receipts *receipts
	offers   offers // the worker certificates proxies offered, parsed

	// Reconnection and failover tuning; tests shorten them.
	backoff        redial.Backoff
	refusalBackoff redial.Backoff // after a payment key mismatch
	reselectEvery  time.Duration  // with MaxProxies: how often the proxies are chosen again
	reselectGap    time.Duration  // and at least how long between two choices
	connectWait    time.Duration  // how long a request waits for a first proxy connection
	pingEvery      time.Duration
	streamsPerConn int           // requests that fill a proxy connection: then another is opened
	extraIdle      time.Duration // how long such an extra connection stays idle before it closes
	bodyWait       time.Duration // how long a request waits for room in the body budget
	bodyRead       time.Duration // how long an app may take to upload its request body

	rr         atomic.Uint64 // round-robin position
	modelsWarn limiter       // model list failures repeat with every app poll
	guardWarn  limiter       // a refused page or Host name may retry in a loop
	connMu     sync.Mutex
	connCh     chan struct{} // closed and replaced whenever a proxy connects or disconnects

	targetsMu  sync.Mutex
	targets    []ProxyTarget    // every proxy the client may use (SetProxies)
	probes     map[string]probe // with MaxProxies: the last probe of each target not connected, by endpoint
	reselectCh chan struct{}

	runMu   sync.Mutex
	running bool
	ready   chan struct{} // closed once Run has bound its listener or failed to
	addr    net.Addr
}

// New validates cfg and builds a Client; nothing is dialled or bound until Run. The transport
// config must carry the client's identity and the verifier whose policy decides which proxies
// are trusted; New restricts peers to the proxy role.
func New(cfg Config, tc transport.Config, log zerolog.Logger) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if tc.Identity == nil {
		return nil, errors.New("client: transport config: identity is required")
	}
	if tc.Verifier == nil {
		return nil, errors.New("client: transport config: verifier is required")
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxBodiesBytes == 0 {
		cfg.MaxBodiesBytes = max(DefaultMaxBodiesBytes, cfg.MaxBodyBytes)
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.ReceiptsKept == 0 {
		cfg.ReceiptsKept = DefaultReceiptsKept
	}
	if tc.Now == nil {
		tc.Now = time.Now
	}
	g, err := newGuard(&cfg)
	if err != nil {
		return nil, err
	}
	// A client only ever talks to proxies: a worker or another client on a proxy's address is refused.
	tc.PeerRoles = []attest.Role{attest.RoleProxy}
	if tc.Conns == nil {
		tc.Conns = new(transport.Conns)
	}
	c := &Client{
		cfg:            cfg,
		tc:             tc,
		log:            log.With().Str("component", "client").Logger(),
		stats:          newStats(),
		started:        time.Now(),
		guard:          g,
		bodies:         newBudget(cfg.MaxBodiesBytes),
		receipts:       newReceipts(cfg.ReceiptsKept),
		backoff:        redial.Backoff{Min: 200 * time.Millisecond, Max: 30 * time.Second},
		refusalBackoff: proxyset.SlowBackoff,
		reselectEvery:  5 * time.Minute,
		reselectGap:    10 * time.Second,
		connectWait:    5 * time.Second,
		pingEvery:      10 * time.Second,
		streamsPerConn: transport.DefaultMaxStreams,
		extraIdle:      defaultExtraIdle,
		bodyWait:       2 * time.Second,
		bodyRead:       time.Minute,
		ready:          make(chan struct{}),
		connCh:         make(chan struct{}),
		probes:         map[string]probe{},
		reselectCh:     make(chan struct{}, 1),
		modelsWarn:     limiter{every: time.Minute},
		guardWarn:      limiter{every: time.Minute},
	}
	c.tc.OnHandshake = c.stats.handshakes.Also(tc.OnHandshake)
	c.set = proxyset.New(newProxy, c.keep)
	if err := c.SetProxies(proxyset.Static(cfg.Proxies)); err != nil {
		return nil, err
	}
	return c, nil
}

// Addr blocks until Run has bound its HTTP listener and returns its address, or nil if Run failed
// to listen. It must only be called once Run has been (or is being) called.
func (c *Client) Addr() net.Addr {
	<-c.ready
	return c.addr
}

// Run binds the HTTP listener, keeps a connection to every proxy and serves until ctx ends. It
// returns nil on cancellation, after closing the listener, every proxy connection and every
// goroutine it started.
func (c *Client) Run(ctx context.Context) error {
	c.runMu.Lock()
	if c.running {
		c.runMu.Unlock()
		return errors.New("client: Run called twice")
	}
	c.running = true
	c.runMu.Unlock()

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", c.cfg.Listen)
	if err != nil {
		close(c.ready)
		return fmt.Errorf("client: listen %s: %w", c.cfg.Listen, err)
	}
	c.addr = ln.Addr()
	close(c.ready)
	c.log.Info().Str("listen", c.addr.String()).Strs("proxies", c.cfg.Proxies).
		Bool("api_token", c.cfg.APIToken != "").Msg("serving OpenAI API")
	if c.cfg.APIToken == "" && !loopback(c.addr) {
		// Every request this API accepts is paid from this client's account.
		c.log.Warn().Str("listen", c.addr.String()).
			Msg("the API listens beyond loopback without an API token: anyone who reaches it spends this client's funds")
	}
	if c.guard.anyOrigin && c.cfg.APIToken == "" {
		c.log.Warn().Msg("client.allowed_origins is *: any web page the user opens can spend this client's funds")
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { c.set.Run(ctx) })
	wg.Go(func() { c.selectLoop(ctx) })
	// Certificates are short-lived: replace ours before it expires; live connections are unaffected.
	wg.Go(func() { _ = c.tc.Identity.Run(ctx, c.log) })

	srv := &http.Server{
		Handler:           c.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// Request contexts derive from ctx, so cancelling Run cancels every in-flight stream.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    stdlog.New(debugWriter{c.log.With().Str("source", "http").Logger()}, "", 0),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(newLimitListener(ln, c.cfg.MaxConnections)) }()

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("client: serve http: %w", err)
	}
	cancel()
	shutCtx, shutCancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := srv.Shutdown(shutCtx); err != nil {
		_ = srv.Close()
	}
	shutCancel()
	if runErr == nil {
		if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			runErr = fmt.Errorf("client: serve http: %w", err)
		}
	}
	wg.Wait()
	c.log.Info().Msg("stopped")
	return runErr
}

// routes is the HTTP surface: the OpenAI API and the stats pages behind the optional bearer token,
// all of it refused to foreign web pages and Host names.
func (c *Client) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/chat/completions", c.auth(c.completionHandler(kindChat)))
	mux.Handle("/v1/completions", c.auth(c.completionHandler(kindCompletion)))
	mux.Handle("/v1/responses", c.auth(c.completionHandler(kindResponses)))
	mux.Handle("/v1/embeddings", c.auth(c.completionHandler(kindEmbeddings)))
	mux.Handle("/v1/audio/transcriptions", c.auth(c.completionHandler(kindTranscription)))
	mux.Handle("GET /v1/models", c.auth(http.HandlerFunc(c.serveModels)))
	mux.Handle("GET /v1/models/{model...}", c.auth(http.HandlerFunc(c.serveModel)))
	mux.Handle("/v1/", c.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errNotFoundPath(r.URL.Path))
	})))
	mux.Handle("GET "+receiptPath+"{id}", c.auth(http.HandlerFunc(c.serveReceipt)))
	mux.HandleFunc("GET /healthz", c.serveHealth)
	mux.Handle("GET /jsonstats", c.auth(http.HandlerFunc(c.serveJSONStats)))
	mux.Handle("GET /stats", c.auth(http.HandlerFunc(c.serveHTMLStats)))
	mux.Handle("GET /metrics", c.auth(statsweb.MetricsHandler("client", c)))
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeError(w, errNotFoundPath(r.URL.Path)) }))
	return withRequestID(c.protect(mux))
}

// debugWriter sends net/http's own complaints (bad TLS hellos, broken connections) to the debug log.
type debugWriter struct{ log zerolog.Logger }

func (d debugWriter) Write(p []byte) (int, error) {
	d.log.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// limiter lets one event through per interval, for warnings that every request could repeat.
type limiter struct {
	every time.Duration
	last  atomic.Int64 // unix nanoseconds of the last event let through
}

func (l *limiter) allow() bool {
	now := time.Now().UnixNano()
	last := l.last.Load()
	return now-last >= int64(l.every) && l.last.CompareAndSwap(last, now)
}

func loopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
