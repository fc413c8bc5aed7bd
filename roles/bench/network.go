package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/sim"
	"github.com/cocoon-network/cocoon/gpu/scripted"
	"github.com/cocoon-network/cocoon/roles/internal/poll"
	"github.com/cocoon-network/cocoon/transport"
)

// network is the role processes of one run.
type network struct {
	o         *Options
	dir, sim  string
	opt       netOptions
	procs     []*roleProc
	proxyAddr string // QUIC
	proxyWeb  string // http://host:port
	clientURL string
	chain     *chainSetup // payments on: the local chain and what setup laid out on it
}

// netOptions are the choices of one network beyond the bench's defaults.
type netOptions struct {
	payments  bool   // payments on, on a local chain served by `cocoon chain serve`, as in production
	plaintext bool   // the client sends request bodies in clear (client.plaintext_dev)
	tag       string // names this network's CPU profiles (--cpuprofile): <tag>-<role>.pprof
}

// newNetwork is a network of the run's role processes, with its own data directory under dir.
func newNetwork(o *Options, dir string, opt netOptions) (*network, error) {
	if opt.tag == "" {
		opt.tag = o.Scenario
	}
	sub, err := os.MkdirTemp(dir, opt.tag+"-")
	if err != nil {
		return nil, fmt.Errorf("bench: temp dir: %w", err)
	}
	return &network{o: o, dir: sub, sim: filepath.Join(dir, "tdx-sim"), opt: opt}, nil
}

type roleProc struct {
	name   string
	cmd    *exec.Cmd
	out    *tailBuffer
	done   chan struct{}
	gcFile string // where the role counts the collections it was asked for (GCOnSignal); "": none
	gcs    int    // collections asked for so far
	// mem is the role's memory classes after the last collection it was asked for.
	mem map[string]uint64
}

func (p *roleProc) pid() int { return p.cmd.Process.Pid }

// cleanEnv is the environment without COCOON_* settings: only this run's flags configure the roles.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COCOON_") {
			env = append(env, kv)
		}
	}
	return env
}

func (n *network) common(name string) []string {
	return []string{"--sim", "--allow-simulated", "--sim-dir", n.sim, "--data", filepath.Join(n.dir, name), "--log-level", "warn"}
}

func (n *network) spawn(name string, args ...string) (*roleProc, error) {
	p := &roleProc{name: name, out: &tailBuffer{max: 64 << 10}, done: make(chan struct{})}
	if name != "chain" {
		if n.o.CPUProfileDir != "" {
			args = append(args, "--cpuprofile", filepath.Join(n.o.CPUProfileDir, n.opt.tag+"-"+name+".pprof"))
		}
		if n.o.TraceDir != "" {
			args = append(args, "--trace", filepath.Join(n.o.TraceDir, n.opt.tag+"-"+name+".trace"))
		}
		p.gcFile = filepath.Join(n.dir, name+".gc")
		args = append(args, "--gc-on-signal", p.gcFile)
		if n.o.MemProfileDir != "" {
			args = append(args, "--memprofile", filepath.Join(n.o.MemProfileDir, n.opt.tag+"-"+name))
		}
	}
	p.cmd = exec.Command(n.o.Bin, append([]string{name}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = cleanEnv()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	n.procs = append(n.procs, p)
	n.o.logf("%s started, pid %d", name, p.pid())
	return p, nil
}

// died reports a role process that exited before the run ended, with the end of its output.
func (n *network) died() error {
	for _, p := range n.procs {
		select {
		case <-p.done:
			return fmt.Errorf("bench: %s exited (%v); its last output:\n%s", p.name, p.cmd.ProcessState, p.out.String())
		default:
		}
	}
	return nil
}

// collectGarbage makes every role collect its garbage and return the freed pages to the system,
// and waits until each has: a memory sample taken next counts what the roles keep.
func (n *network) collectGarbage(ctx context.Context) error {
	for _, p := range n.procs {
		if p.gcFile == "" {
			continue
		}
		p.gcs++
		if err := p.cmd.Process.Signal(gcSignal); err != nil {
			return fmt.Errorf("bench: ask %s to collect garbage: %w", p.name, err)
		}
	}
	for _, p := range n.procs {
		if p.gcFile == "" {
			continue
		}
		err := poll.Until(ctx, setupTimeout, nil, func() error {
			if err := n.died(); err != nil {
				return err
			}
			b, err := os.ReadFile(p.gcFile)
			if err != nil {
				return err
			}
			// A count below the one asked for is a file not yet written, or being written.
			r, err := parseGCReport(b)
			if err != nil || r.count < p.gcs {
				return fmt.Errorf("%s collected garbage %d times of %d", p.name, r.count, p.gcs)
			}
			p.mem = r.classes
			return nil
		})
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}

// stop ends every role: SIGTERM, then SIGKILL for one that does not stop within five seconds.
func (n *network) stop() {
	for _, p := range n.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range n.procs {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

func (n *network) startProxy(ctx context.Context) error {
	addr := n.proxyAddr // picked already when a chain lists it
	if addr == "" {
		var err error
		if addr, err = loopbackPort("udp"); err != nil {
			return err
		}
	}
	web, err := loopbackPort("tcp")
	if err != nil {
		return err
	}
	n.proxyAddr, n.proxyWeb = addr, "http://"+web
	args := append([]string{"--listen", addr, "--stats-listen", web}, n.common("proxy")...)
	if n.chain != nil {
		args = append(args, n.chain.flags("proxy-payment")...)
		args = append(args, "--proxy-contract", n.chain.proxyContract)
	}
	if _, err := n.spawn("proxy", args...); err != nil {
		return err
	}
	return n.waitHTTP(ctx, n.proxyWeb+"/healthz")
}

// start runs proxy, worker (in front of engineURL) and client, and waits until a request can pass.
func (n *network) start(ctx context.Context, engineURL string, concurrency int) error {
	sum := sha256.Sum256([]byte("cocoon bench engine " + engineURL))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if n.opt.payments {
		if err := n.startChain(ctx, engineURL, digest); err != nil {
			return err
		}
	}
	if err := n.startProxy(ctx); err != nil {
		return err
	}
	web, err := loopbackPort("tcp")
	if err != nil {
		return err
	}
	args := append([]string{"--proxies", n.proxyAddr, "--stats-listen", web, "--model", scripted.DefaultModel,
		"--engine-url", engineURL, "--weights-digest", digest,
		"--max-active", strconv.Itoa(max(64, concurrency))}, n.common("worker")...)
	if n.chain != nil {
		args = append(args, n.chain.flags("worker-wallet")...)
	}
	if _, err := n.spawn("worker", args...); err != nil {
		return err
	}
	if err := poll.Until(ctx, setupTimeout, nil, func() error {
		if err := n.died(); err != nil {
			return err
		}
		got, err := n.proxyWorkers()
		if err == nil && got != 1 {
			err = fmt.Errorf("proxy lists %d workers", got)
		}
		return err
	}); err != nil {
		return fmt.Errorf("bench: worker did not register: %w", err)
	}
	api, err := loopbackPort("tcp")
	if err != nil {
		return err
	}
	n.clientURL = "http://" + api
	args = append([]string{"--proxies", n.proxyAddr, "--listen", api}, n.common("client")...)
	if n.chain != nil {
		// Deposits are topped up long before a run could spend them.
		args = append(args, n.chain.flags("client-wallet")...)
		args = append(args, "--top-up-below", "50000000000", "--top-up-amount", "100000000000")
	}
	if n.opt.plaintext {
		args = append(args, "--plaintext-dev")
	}
	if _, err := n.spawn("client", args...); err != nil {
		return err
	}
	if err := n.waitHTTP(ctx, n.clientURL+"/healthz"); err != nil {
		return err
	}
	n.o.logf("client API at %s", n.clientURL)
	return nil
}

// startRoles is start, then each role's RSS once it is up, in rep.Roles.
func (n *network) startRoles(ctx context.Context, engineURL string, concurrency int, rep *report) error {
	if err := n.start(ctx, engineURL, concurrency); err != nil {
		return err
	}
	rep.Roles = map[string]*roleStats{}
	for _, p := range n.procs {
		rss, _, _ := procMem(p.pid())
		rep.Roles[p.name] = &roleStats{PID: p.pid(), StartRSSMB: mib(rss)}
	}
	return nil
}

func (n *network) waitHTTP(ctx context.Context, url string) error {
	hc := newLoadClient(1)
	defer hc.CloseIdleConnections()
	err := poll.Until(ctx, setupTimeout, nil, func() error {
		if err := n.died(); err != nil {
			return err
		}
		resp, err := getURL(ctx, hc, url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: status %d", url, resp.StatusCode)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bench: wait for %s: %w", url, err)
	}
	return nil
}

func getURL(ctx context.Context, hc *http.Client, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return hc.Do(req)
}

type proxyJSONStats struct {
	Workers []struct {
		Active int64 `json:"active"`
	} `json:"workers"`
}

func (n *network) proxyStats() (proxyJSONStats, error) {
	var st proxyJSONStats
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := getURL(ctx, http.DefaultClient, n.proxyWeb+"/jsonstats")
	if err != nil {
		return st, fmt.Errorf("proxy stats: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("proxy stats: %w", err)
	}
	return st, nil
}

func (n *network) proxyWorkers() (int, error) {
	st, err := n.proxyStats()
	return len(st.Workers), err
}

func (n *network) proxyActive() (int64, error) {
	st, err := n.proxyStats()
	var a int64
	for _, w := range st.Workers {
		a += w.Active
	}
	return a, err
}

// sampleRSS samples each role's RSS every 100 ms until the returned function is called, which
// returns the highest RSS and RssAnon seen.
func (n *network) sampleRSS() func() (rss, anon map[string]int64) {
	top, topAnon := map[string]int64{}, map[string]int64{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, p := range n.procs {
				if rss, _, err := procMem(p.pid()); err == nil {
					top[p.name] = max(top[p.name], rss)
				}
				if anon, err := procAnon(p.pid()); err == nil {
					topAnon[p.name] = max(topAnon[p.name], anon)
				}
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() (map[string]int64, map[string]int64) {
		close(stop)
		<-done
		return top, topAnon
	}
}

// cpu is each role's CPU time so far.
func (n *network) cpu() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, p := range n.procs {
		if d, err := procCPU(p.pid()); err == nil {
			out[p.name] = d
		}
	}
	return out
}

// dialAsClient connects this process to the proxy as a client role does.
func (n *network) dialAsClient(ctx context.Context) (*transport.Conn, error) {
	ids, err := newIdentities(n.sim, n.o.Version, attest.RoleClient)
	if err != nil {
		return nil, err
	}
	tc, err := ids.config()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	c, err := transport.Dial(ctx, n.proxyAddr, tc)
	if err != nil {
		return nil, fmt.Errorf("bench: dial proxy as a client: %w", err)
	}
	go func() {
		for range c.Control() {
		}
	}()
	return c, nil
}

// loopbackPort finds a free loopback port; the role binds it a moment later.
func loopbackPort(network string) (string, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("bench: free udp port: %w", err)
		}
		defer c.Close()
		return c.LocalAddr().String(), nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: free tcp port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// identities makes RA-TLS certificates with simulated quotes, as a role started with --sim does.
type identities struct {
	role     attest.Role
	version  string
	claims   attest.Claims
	quoter   attest.Quoter
	verifier *attest.Verifier
	digest   string
}

func newIdentities(simDir, version string, role attest.Role) (*identities, error) {
	root, err := sim.Open(simDir)
	if err != nil {
		return nil, fmt.Errorf("bench: development root of trust: %w", err)
	}
	sum := sha256.Sum256([]byte("cocoon bench worker/" + scripted.DefaultModel))
	b := &identities{role: role, version: version, digest: "sha256:" + hex.EncodeToString(sum[:])}
	b.claims = attest.Claims{Role: role, Version: b.version, ConfigDigest: sha256.Sum256([]byte("cocoon bench " + string(role)))}
	if role == attest.RoleWorker {
		b.claims.Model, b.claims.WeightsDigest = scripted.DefaultModel, b.digest
		bin := sha256.Sum256([]byte("cocoon bench binary"))
		if b.quoter, err = root.Quoter(attest.SimulatedMeasurements(bin[:], role, b.claims.ConfigDigest)); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	b.verifier, err = attest.NewVerifier(attest.VerifierConfig{
		Roots: []attest.TrustedRoot{root.TrustedRoot()},
		Policy: attest.Policy{AllowSimulated: true, Roles: map[attest.Role]attest.RolePolicy{
			attest.RoleProxy: {ImageHashes: []string{attest.AnyImage}},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("bench: verifier: %w", err)
	}
	return b, nil
}

// config returns a transport config with a new identity: a new key, certificate and quote.
func (b *identities) config() (transport.Config, error) {
	id, err := transport.NewIdentity(transport.IdentityConfig{Claims: b.claims, Quoter: b.quoter})
	if err != nil {
		return transport.Config{}, fmt.Errorf("bench: make %s certificate: %w", b.role, err)
	}
	return transport.Config{Identity: id, Verifier: b.verifier, PeerRoles: []attest.Role{attest.RoleProxy},
		SoftwareVersion: b.version, MaxCertValidity: 24 * time.Hour, Log: zerolog.Nop()}, nil
}
