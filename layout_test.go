package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// layoutRule is one import the code layout forbids (STYLE.md §1, what depguard would enforce).
type layoutRule struct {
	// forbids reports whether the package in dir (module-relative, "." for the root) may not
	// import imp. mod is the module path.
	forbids func(mod, dir, imp string) bool
	why     string
}

var layoutRules = []layoutRule{
	{
		// Roles are peers wired together only by roles/node; what they share lives in roles/internal
		// or transport/wire, so one role can change without breaking another.
		forbids: func(mod, dir, imp string) bool {
			from, ok := roleOf(dir)
			if !ok || (!isRole(from) && from != "internal") {
				return false
			}
			to, ok := roleOf(modRel(mod, imp))
			return ok && to != from && to != "internal"
		},
		why: "a role package never imports another role (share code through roles/internal or transport/wire)",
	},
	{
		// Only the command line and the wiring build roles: everything else is a library the roles use.
		forbids: func(mod, dir, imp string) bool {
			to, ok := roleOf(modRel(mod, imp))
			if !ok || !isRole(to) {
				return false
			}
			from, _ := roleOf(dir)
			return dir != "." && !under(dir, "roles/node") && from != to
		},
		why: "only main and roles/node import the roles (client, proxy, worker)",
	},
	{
		// Attestation, payments and the engine adapter deal in bytes, keys and money; the wire builds
		// on them, never the reverse, so each can be tested and reviewed without a network.
		// transport/burst, which reads bursts from any connection, is the one leaf they may use.
		forbids: func(mod, dir, imp string) bool {
			rel := modRel(mod, imp)
			return (under(dir, "attest") || under(dir, "settle") || under(dir, "gpu")) && under(rel, "transport") && rel != "transport/burst"
		},
		why: "attest, settle and gpu never import transport (the RA-TLS certificate format is attest/ratls)",
	},
	{
		forbids: func(mod, dir, imp string) bool { return under(dir, "transport/burst") && modRel(mod, imp) != "" },
		why:     "transport/burst imports nothing of the module: attest, settle and gpu may import it",
	},
	{
		// The simulator builds on attest, like go-tdx-guest's testing package on verify: real
		// verification never depends on how development quotes are made.
		forbids: func(mod, dir, imp string) bool {
			return under(dir, "attest") && !under(dir, "attest/sim") && under(modRel(mod, imp), "attest/sim") &&
				!under(dir, "attest/attestcmd") && !under(dir, "attest/attesttest")
		},
		why: "attest never imports attest/sim (the simulator imports attest; only attestcmd and attesttest use it)",
	},
	{
		// Flags and environment variables are defined where commands are, so precedence stays plain code.
		forbids: func(_, dir, imp string) bool {
			return under(imp, "github.com/urfave/cli") && dir != "." && !under(dir, "config") && !isCmd(dir)
		},
		why: "only main, config and the *cmd packages import urfave/cli",
	},
	{
		// A command package is the command line of its subsystem: runtime code uses the subsystem.
		forbids: func(mod, dir, imp string) bool {
			rel := modRel(mod, imp)
			return rel != "" && isCmd(rel) && dir != "." && !under(dir, rel)
		},
		why: "only main imports a *cmd package (what runtime code needs lives in the subsystem itself)",
	},
	{
		// Test doubles stay out of the attested binary.
		forbids: func(mod, dir, imp string) bool {
			if testOnly(dir) {
				return false
			}
			return imp == "net/http/httptest" || imp == "testing" || testOnly(modRel(mod, imp))
		},
		why: "no non-test package imports a test package (a *test package, testing or net/http/httptest)",
	},
	{
		forbids: func(_, _, imp string) bool { return imp == "math/rand" },
		why:     "math/rand (v1) is forbidden: use crypto/rand for anything secret, math/rand/v2 otherwise",
	},
}

// testOnly reports whether dir is a package made for tests, named after the package it serves
// as net/http/httptest is (attest/attesttest, roles/node/nodetest): they may import testing and
// each other.
func testOnly(dir string) bool {
	parent, last, ok := strings.Cut(reverse(dir), "/")
	if !ok {
		return false
	}
	parent, last = reverse(last), reverse(parent)
	name := parent[strings.LastIndex(parent, "/")+1:]
	return last == name+"test"
}

func reverse(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}

// modRel is imp relative to the module, or "" for an import from outside it.
func modRel(mod, imp string) string {
	rel, _ := strings.CutPrefix(imp, mod+"/")
	if rel == imp {
		return ""
	}
	return rel
}

// isRole reports whether name is one of the three roles.
func isRole(name string) bool { return name == "client" || name == "proxy" || name == "worker" }

// isCmd reports whether dir is a command package (attest/attestcmd, settle/chaincmd).
func isCmd(dir string) bool {
	last := dir[strings.LastIndex(dir, "/")+1:]
	return strings.HasSuffix(last, "cmd")
}

// under reports whether path is p or inside it.
func under(path, p string) bool { return path == p || strings.HasPrefix(path, p+"/") }

// roleOf returns X for a module-relative path roles/X or roles/X/….
func roleOf(rel string) (string, bool) {
	rest, ok := strings.CutPrefix(rel, "roles/")
	if !ok || rest == "" {
		return "", false
	}
	role, _, _ := strings.Cut(rest, "/")
	return role, true
}

// TestLayout enforces the layout rules on the imports of every non-test Go file.
func TestLayout(t *testing.T) {
	require := require.New(t)
	mod, err := modulePath("go.mod")
	require.NoError(err)
	files, err := sourceFiles(".")
	require.NoError(err)
	require.NotEmpty(files)

	// One error per offending import, in file order, so the list reads as a to-do.
	for _, f := range files {
		for _, spec := range f.ast.Imports {
			imp, err := strconv.Unquote(spec.Path.Value)
			require.NoError(err, f.path)
			for _, r := range layoutRules {
				if r.forbids(mod, f.dir, imp) {
					t.Errorf("%s imports %q: %s", f.path, imp, r.why)
				}
			}
		}
	}
}

// TestLayoutRules pins down what each rule allows and forbids.
func TestLayoutRules(t *testing.T) {
	const mod = "example.com/m"
	testCases := map[string]struct {
		dir, imp string
		wantBad  bool
	}{
		"role imports another role":             {dir: "roles/proxy", imp: mod + "/roles/worker", wantBad: true},
		"role subpackage imports another role":  {dir: "roles/proxy/x", imp: mod + "/roles/client/y", wantBad: true},
		"role imports its own subpackage":       {dir: "roles/proxy", imp: mod + "/roles/proxy/internal/q"},
		"role imports roles/internal":           {dir: "roles/worker", imp: mod + "/roles/internal/redial"},
		"roles/internal imports roles/internal": {dir: "roles/internal/a", imp: mod + "/roles/internal/b"},
		"roles/internal imports a role":         {dir: "roles/internal/redial", imp: mod + "/roles/proxy", wantBad: true},
		"roles/internal imports the wiring":     {dir: "roles/internal/redial", imp: mod + "/roles/node", wantBad: true},
		"role imports the wiring":               {dir: "roles/worker", imp: mod + "/roles/node", wantBad: true},
		"main imports roles":                    {dir: ".", imp: mod + "/roles/proxy"},
		"the wiring imports roles":              {dir: "roles/node", imp: mod + "/roles/proxy"},
		"the demo imports roles":                {dir: "roles/node/demo", imp: mod + "/roles/client"},
		"the bench imports a role":              {dir: "roles/bench", imp: mod + "/roles/worker", wantBad: true},
		"settle imports a role":                 {dir: "settle/meter", imp: mod + "/roles/proxy", wantBad: true},
		"a similar name is another role":        {dir: "roles/proxy", imp: mod + "/roles/proxyx", wantBad: true},
		"rolesx is not under roles":             {dir: "rolesx/a", imp: mod + "/roles/proxy", wantBad: true},
		"attest imports transport":              {dir: "attest", imp: mod + "/transport", wantBad: true},
		"attest/sim imports transport/wire":     {dir: "attest/sim", imp: mod + "/transport/wire", wantBad: true},
		"attestcmd imports transport":           {dir: "attest/attestcmd", imp: mod + "/transport", wantBad: true},
		"settle imports transport":              {dir: "settle/ledger", imp: mod + "/transport/wire", wantBad: true},
		"gpu imports transport":                 {dir: "gpu/builtin", imp: mod + "/transport", wantBad: true},
		"gpu imports transport/burst":           {dir: "gpu", imp: mod + "/transport/burst"},
		"gpu imports transport/burstx":          {dir: "gpu", imp: mod + "/transport/burstx", wantBad: true},
		"transport/burst imports the module":    {dir: "transport/burst", imp: mod + "/transport/wire", wantBad: true},
		"transport/burst imports sync":          {dir: "transport/burst", imp: "sync"},
		"transport imports attest":              {dir: "transport", imp: mod + "/attest"},
		"attest imports transporter":            {dir: "attest", imp: mod + "/transporter"},
		"attest imports the simulator":          {dir: "attest", imp: mod + "/attest/sim", wantBad: true},
		"attest/ratls imports the simulator":    {dir: "attest/ratls", imp: mod + "/attest/sim", wantBad: true},
		"the simulator imports attest":          {dir: "attest/sim", imp: mod + "/attest"},
		"attestcmd imports the simulator":       {dir: "attest/attestcmd", imp: mod + "/attest/sim"},
		"the wiring imports the simulator":      {dir: "roles/node", imp: mod + "/attest/sim"},
		"main imports cli":                      {dir: ".", imp: "github.com/urfave/cli/v2"},
		"config imports cli":                    {dir: "config", imp: "github.com/urfave/cli/v2"},
		"config subpackage imports cli":         {dir: "config/flags", imp: "github.com/urfave/cli/v3"},
		"a cmd package imports cli":             {dir: "settle/chaincmd", imp: "github.com/urfave/cli/v2"},
		"role imports cli":                      {dir: "roles/client", imp: "github.com/urfave/cli/v2", wantBad: true},
		"the bench imports cli":                 {dir: "roles/bench", imp: "github.com/urfave/cli/v2", wantBad: true},
		"configx imports cli":                   {dir: "configx", imp: "github.com/urfave/cli", wantBad: true},
		"main imports a cmd package":            {dir: ".", imp: mod + "/settle/chaincmd"},
		"the wiring imports a cmd package":      {dir: "roles/node", imp: mod + "/settle/chaincmd", wantBad: true},
		"a cmd package imports another":         {dir: "settle/chaincmd", imp: mod + "/attest/attestcmd", wantBad: true},
		"an outside package named cmd":          {dir: "settle", imp: "example.org/x/somecmd"},
		"runtime imports a test package":        {dir: "roles/bench", imp: mod + "/gpu/gputest", wantBad: true},
		"runtime imports attesttest":            {dir: "roles/node", imp: mod + "/attest/attesttest", wantBad: true},
		"runtime imports httptest":              {dir: "gpu/scripted", imp: "net/http/httptest", wantBad: true},
		"runtime imports testing":               {dir: "gpu", imp: "testing", wantBad: true},
		"a test package imports testing":        {dir: "roles/node/nodetest", imp: "testing"},
		"a test package imports another":        {dir: "attest/attesttest", imp: mod + "/gpu/gputest"},
		"a package that only ends in test":      {dir: "gpu", imp: mod + "/gpu/contest"},
		"attest is not a test package":          {dir: "transport", imp: mod + "/attest"},
		"math/rand":                             {dir: "gpu", imp: "math/rand", wantBad: true},
		"math/rand/v2":                          {dir: "gpu", imp: "math/rand/v2"},
		"crypto/rand":                           {dir: ".", imp: "crypto/rand"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			bad := false
			for _, r := range layoutRules {
				bad = bad || r.forbids(mod, tc.dir, tc.imp)
			}
			assert.Equal(tc.wantBad, bad, "%s importing %s", tc.dir, tc.imp)
		})
	}
}

// modulePath reads the module line of a go.mod file.
func modulePath(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s: no module line", gomod)
}

// TestRootIsTheCLI: the top level holds the command line and the whole-binary tests only; every
// other job has a package of its own.
func TestRootIsTheCLI(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	entries, err := os.ReadDir(".")
	require.NoError(err)
	allowedTests := map[string]bool{"layout_test.go": true, "pkgdoc_test.go": true, "compose_test.go": true}
	lines := 0
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") {
			continue
		}
		if strings.HasSuffix(name, "_test.go") {
			assert.True(allowedTests[name] || strings.HasPrefix(name, "e2e"),
				"%s: the root keeps only the end-to-end, compose, layout and package-doc tests; move it beside the code it tests", name)
			continue
		}
		assert.Equal("main.go", name, "the root's only non-test file is main.go; %s belongs in a package", name)
		b, err := os.ReadFile(name)
		require.NoError(err)
		lines += strings.Count(string(b), "\n")
	}
	assert.Less(lines, 300, "package main is the command line: wiring, demo, bench and runtimes live in packages")
}
