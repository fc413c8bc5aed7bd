package main

import (
	"bufio"
	"fmt"
	"os"
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
		// Roles are peers wired together only by main; what they share lives in roles/internal or
		// transport/wire, so one role can change without breaking another.
		forbids: func(mod, dir, imp string) bool {
			from, ok := roleOf(dir)
			if !ok {
				return false
			}
			rel, ok := strings.CutPrefix(imp, mod+"/")
			if !ok {
				return false
			}
			to, ok := roleOf(rel)
			return ok && to != from && to != "internal"
		},
		why: "a role package never imports another role (share code through roles/internal or transport/wire)",
	},
	{
		// attest deals in bytes and keys; transport builds on it. Only the operator command, which
		// reads certificates, may look at transport.
		forbids: func(mod, dir, imp string) bool {
			return under(dir, "attest") && !under(dir, "attest/attestcmd") && under(imp, mod+"/transport")
		},
		why: "attest never imports transport (only attest/attestcmd may)",
	},
	{
		// Flags and environment variables are defined in one place, so precedence stays plain code.
		forbids: func(_, dir, imp string) bool {
			return under(imp, "github.com/urfave/cli") && dir != "." && !under(dir, "config")
		},
		why: "only main and config import urfave/cli",
	},
	{
		forbids: func(_, _, imp string) bool { return imp == "math/rand" },
		why:     "math/rand (v1) is forbidden: use crypto/rand for anything secret, math/rand/v2 otherwise",
	},
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
		"main imports roles":                    {dir: ".", imp: mod + "/roles/proxy"},
		"a similar name is another role":        {dir: "roles/proxy", imp: mod + "/roles/proxyx", wantBad: true},
		"rolesx is not under roles":             {dir: "rolesx/a", imp: mod + "/roles/proxy"},
		"attest imports transport":              {dir: "attest", imp: mod + "/transport", wantBad: true},
		"attest/sim imports transport/wire":     {dir: "attest/sim", imp: mod + "/transport/wire", wantBad: true},
		"attestcmd imports transport":           {dir: "attest/attestcmd", imp: mod + "/transport"},
		"transport imports attest":              {dir: "transport", imp: mod + "/attest"},
		"attest imports transporter":            {dir: "attest", imp: mod + "/transporter"},
		"main imports cli":                      {dir: ".", imp: "github.com/urfave/cli/v2"},
		"config imports cli":                    {dir: "config", imp: "github.com/urfave/cli/v2"},
		"config subpackage imports cli":         {dir: "config/flags", imp: "github.com/urfave/cli/v3"},
		"role imports cli":                      {dir: "roles/client", imp: "github.com/urfave/cli/v2", wantBad: true},
		"configx imports cli":                   {dir: "configx", imp: "github.com/urfave/cli", wantBad: true},
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
