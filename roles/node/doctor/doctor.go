// Package doctor checks what a node needs before it runs, one line per check: the quote device or
// simulator, attestation collateral, the engine and its model, the weights digest, the node's image
// and model on the registry's lists, the proxies over UDP, wallet and deposit balances, the clock
// against the chain and free disk for the ledger. Each check says ok, warn or fail, and the fix.
// It changes nothing a running node holds: chains are read (through the URL a process serving a
// locked local chain records), wallet keys are never made; only what any first start makes may
// appear (the development root of a simulated node, the collateral cache directory). Its command
// is roles/node/doctorcmd (`cocoon doctor`).
package doctor

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tdx-guest/verify/trust"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chain/chains"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// Status is a check's verdict.
type Status int

// The verdicts: only Fail makes the node unfit to run.
const (
	OK Status = iota
	Warn
	Fail
)

func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Warn:
		return "warn"
	default:
		return "fail"
	}
}

// Result is one check's line.
type Result struct {
	Check  string
	Status Status
	Detail string // what was found
	Fix    string // what to do; shown with warn and fail
}

// String is the result as one line: status, check, what was found and, unless ok, the fix.
func (r Result) String() string {
	line := fmt.Sprintf("%-4s  %-10s  %s", r.Status, r.Check, r.Detail)
	if r.Fix != "" && r.Status != OK {
		line += "; fix: " + r.Fix
	}
	return line
}

func ok(check, format string, args ...any) Result {
	return Result{Check: check, Status: OK, Detail: fmt.Sprintf(format, args...)}
}

func warn(check, fix, format string, args ...any) Result {
	return Result{Check: check, Status: Warn, Detail: fmt.Sprintf(format, args...), Fix: fix}
}

func fail(check, fix, format string, args ...any) Result {
	return Result{Check: check, Status: Fail, Detail: fmt.Sprintf(format, args...), Fix: fix}
}

// Deps are what the checks reach outside the process; zero fields get the real ones (Defaults).
// Tests pass stubs.
type Deps struct {
	// TDX opens the TDX guest's quote interface.
	TDX func() (attest.Quoter, error)
	// Collateral fetches collateral from the PCS or PCCS; nil: HTTPS.
	Collateral trust.HTTPSGetter
	// HTTP asks the engine for its models and a chain service for its time.
	HTTP *http.Client
	// OpenChain opens the chain of the payments section.
	OpenChain func(ctx context.Context, w chains.Where) (chain.Chain, func() error, error)
	// ChainTime is the chain's time now (its last block's, or its service's clock).
	ChainTime func(ctx context.Context, w chains.Where) (time.Time, error)
	// Dial makes an attested QUIC handshake with a proxy as this node would, and closes it.
	Dial func(ctx context.Context, endpoint string) (*attest.Peer, error)
	// ImageHash is the image hash the node presents.
	ImageHash func(cfg config.Config, role attest.Role) (attest.ImageHash, bool, error)
	// FreeBytes is the space free for an unprivileged user on dir's file system.
	FreeBytes func(dir string) (uint64, error)
	// Now is the clock.
	Now func() time.Time
	// Timeout bounds each check that waits on the network.
	Timeout time.Duration
}

// Doctor runs the checks of one role's configuration.
type Doctor struct {
	cfg     config.Config
	role    attest.Role
	version string
	deps    Deps

	chainOnce sync.Once
	ch        chain.Chain
	where     chains.Where
	chainVia  string // how the chain was reached, when not as configured
	closeCh   func() error
	chainErr  error

	regOnce sync.Once
	reg     contracts.Registry
	regErr  error

	weightsOnce sync.Once
	weights     string
	weightsFrom string
	weightsErr  error
}

// New is a doctor for cfg as role (proxy, worker or client) runs it; version is what the node
// announces in handshakes.
func New(cfg config.Config, role, version string, deps Deps) (*Doctor, error) {
	r, err := attest.ParseRole(role)
	if err != nil {
		return nil, err
	}
	d := &Doctor{cfg: cfg, role: r, version: version, deps: deps}
	d.defaults()
	return d, nil
}

// check is one named check; applies says whether the role needs it.
type check struct {
	name    string
	roles   []attest.Role
	run     func(d *Doctor, ctx context.Context) Result
	payment bool // only with payments.chain
}

var (
	all   = []attest.Role{attest.RoleProxy, attest.RoleWorker, attest.RoleClient}
	nodes = []attest.Role{attest.RoleProxy, attest.RoleWorker}
)

// checks are every check, in the order they are shown.
var checks = []check{
	{name: "tdx", roles: nodes, run: (*Doctor).checkTDX},
	{name: "collateral", roles: all, run: (*Doctor).checkCollateral},
	{name: "engine", roles: []attest.Role{attest.RoleWorker}, run: (*Doctor).checkEngine},
	{name: "weights", roles: []attest.Role{attest.RoleWorker}, run: (*Doctor).checkWeights},
	{name: "listen", roles: []attest.Role{attest.RoleProxy}, run: (*Doctor).checkListen},
	{name: "registry", roles: all, run: (*Doctor).checkRegistry},
	{name: "image", roles: nodes, run: (*Doctor).checkImage},
	{name: "model", roles: []attest.Role{attest.RoleWorker}, run: (*Doctor).checkModel},
	{name: "proxies", roles: []attest.Role{attest.RoleWorker, attest.RoleClient}, run: (*Doctor).checkProxies},
	{name: "wallet", roles: all, run: (*Doctor).checkWallet, payment: true},
	{name: "deposit", roles: []attest.Role{attest.RoleProxy, attest.RoleClient}, run: (*Doctor).checkDeposit, payment: true},
	{name: "clock", roles: all, run: (*Doctor).checkClock},
	{name: "disk", roles: all, run: (*Doctor).checkDisk},
}

// Run runs the role's checks at once and returns their results in the order shown.
func (d *Doctor) Run(ctx context.Context) []Result {
	var todo []check
	for _, c := range checks {
		if !hasRole(c.roles, d.role) {
			continue
		}
		if c.payment && d.cfg.Payments.Chain == "" {
			todo = append(todo, check{name: c.name, run: func(*Doctor, context.Context) Result {
				return ok(c.name, "no payments.chain: this %s runs without payments", d.role)
			}})
			continue
		}
		todo = append(todo, c)
	}
	out := make([]Result, len(todo))
	var wg sync.WaitGroup
	for i, c := range todo {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, d.deps.Timeout)
			defer cancel()
			out[i] = c.run(d, cctx)
			out[i].Check = c.name
		})
	}
	wg.Wait()
	return out
}

func hasRole(roles []attest.Role, r attest.Role) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}

// Close closes the chain the checks opened.
func (d *Doctor) Close() error {
	if d.closeCh != nil {
		return d.closeCh()
	}
	return nil
}

// Report writes each result as a line and a summary; it returns the names of the failed checks.
func Report(w io.Writer, rs []Result) []string {
	var failed []string
	var n [3]int
	for _, r := range rs {
		fmt.Fprintln(w, r)
		n[r.Status]++
		if r.Status == Fail {
			failed = append(failed, r.Check)
		}
	}
	fmt.Fprintf(w, "%d ok, %d warn, %d fail\n", n[OK], n[Warn], n[Fail])
	return failed
}

// short is an error on one line.
func short(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}
