package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"github.com/cocoon-network/cocoon/config"
)

// helpFlags runs `cocoon <args> --help` in-process and returns each flag's shown default ("" for
// none) and whether it is marked required.
func helpFlags(t *testing.T, args ...string) (defaults map[string]string, required map[string]bool) {
	t.Helper()
	var out bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, io.Discard
	require.NoError(t, app.Run(append(append([]string{"cocoon"}, args...), "--help")))
	line := regexp.MustCompile(`^\s+--([a-z0-9-]+)(?:, -[a-z])?(?: [A-Za-z:]+)?(?: \[ .*? \])?\s{2,}(.*)$`)
	def := regexp.MustCompile(`\(default: ([^()]*)\)(?: \(required\))?(?: \[\$[A-Z_]+\])?$`)
	defaults, required = map[string]string{}, map[string]bool{}
	opts := false
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "OPTIONS:") {
			opts = true
			continue
		}
		m := line.FindStringSubmatch(l)
		if !opts || m == nil || m[1] == "help" {
			continue
		}
		defaults[m[1]] = ""
		if d := def.FindStringSubmatch(m[2]); d != nil {
			defaults[m[1]] = d[1]
		}
		required[m[1]] = strings.Contains(m[2], "(required)")
	}
	return defaults, required
}

// shown is how --help writes a default value: strings quoted, empty ones not at all.
func shown(v any) string {
	switch v := v.(type) {
	case string:
		if v == "" {
			return ""
		}
		return fmt.Sprintf("%q", v)
	case []string:
		return shown(strings.Join(v, ","))
	case config.Duration:
		return time.Duration(v).String()
	case config.Address:
		return shown(v.String())
	case described:
		return string(v)
	default:
		return fmt.Sprint(v)
	}
}

// described is a default --help describes, for a setting whose empty value stands for something.
type described string

// TestHelpShowsDefaults: `--help` of the roles and of `attest cert` shows, for every flag, the
// default the program uses: the value in config.Defaults(), or a description where that value is
// empty and stands for something derived. A flag missing from the table fails, so a new flag
// cannot show a default nobody checked.
func TestHelpShowsDefaults(t *testing.T) {
	d := config.Defaults()
	common := func(m map[string]any) map[string]any {
		for k, v := range map[string]any{
			"config": "", "log-level": d.LogLevel, "data": d.Data, "sim": d.Attestation.Simulated,
			"allow-simulated": d.Attestation.AllowSimulated, "sim-dir": described("<data>/tdx-sim"),
			"policy": described("none: any attested image, with a warning"), "collateral-url": described("Intel PCS"),
			"collateral-dir": described("<data>/collateral"), "collateral-bundle": d.Attestation.CollateralBundle,
			"chain": described("none: requests are free"), "chain-url": d.Payments.ChainURL, "chain-api-key": d.Payments.ChainAPIKey,
			"chain-data": described("<data>/chain.db"), "ton-config": d.Payments.TONConfig, "network": d.Payments.Network,
			"registry": d.Payments.Registry, "registry-interval": d.Payments.RegistryInterval,
			"key": described("<data>/keys/<role>.key"), "offline": d.Attestation.Offline,
		} {
			m[k] = v
		}
		return m
	}
	// Described defaults stand for empty values: check that they are.
	assert.Empty(t, d.Attestation.SimDir+d.Attestation.Policy+d.Attestation.CollateralURL+d.Attestation.CollateralDir+
		d.Payments.Chain+d.Payments.ChainData+d.Payments.Key+d.Worker.EngineURL+d.Client.APIToken)
	assert.Empty(t, append(d.Client.AllowedOrigins, d.Client.AllowedHosts...))

	testCases := map[string]struct {
		args []string
		want map[string]any
	}{
		"proxy": {args: []string{"proxy"}, want: common(map[string]any{
			"listen": d.Proxy.Listen, "stats-listen": d.Proxy.StatsListen, "stats-token": d.Proxy.StatsToken,
			"request-timeout": d.Proxy.RequestTimeout, "proxy-contract": d.Payments.ProxyContract, "print-image": false,
		})},
		"worker": {args: []string{"worker"}, want: common(map[string]any{
			"proxies": d.Worker.Proxies, "engine-url": described("the built-in engine"), "engine-api-key": d.Worker.EngineAPIKey,
			"model": d.Worker.Model, "model-dir": d.Worker.ModelDir, "weights-digest": d.Worker.WeightsDigest,
			"coefficient": d.Worker.Coefficient, "max-active": d.Worker.MaxActive, "owner-address": d.Worker.OwnerAddress,
			"stats-listen": d.Worker.StatsListen, "submit-threshold": d.Payments.SubmitThreshold,
			"builtin-token-delay": d.Worker.TokenDelay, "print-image": false,
		})},
		"client": {args: []string{"client"}, want: common(map[string]any{
			"proxies": d.Client.Proxies, "listen": d.Client.Listen, "api-token": described("none: no token asked"),
			"max-coefficient": d.Client.MaxCoefficient, "max-body-bytes": d.Client.MaxBodyBytes,
			"request-timeout": d.Client.RequestTimeout, "max-bodies-bytes": d.Client.MaxBodiesBytes,
			"max-connections": d.Client.MaxConnections, "allowed-origins": described("none: pages on loopback only"),
			"allowed-hosts": described("none: localhost, loopback IPs, the listen address"), "submit-threshold": d.Payments.SubmitThreshold,
			"max-proxies": d.Client.MaxProxies, "plaintext-dev": d.Client.PlaintextDev, "receipts-kept": d.Client.ReceiptsKept, "top-up-below": d.Payments.TopUpBelow, "top-up-amount": d.Payments.TopUpAmount,
		})},
		"attest cert": {args: []string{"attest", "cert"}, want: map[string]any{
			"sim": false, "role": "", "out": "", "validity": d.Attestation.CertValidity, "model": "", "weights-digest": "",
			"sim-dir": config.SimDir(),
		}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			got, _ := helpFlags(t, tc.args...)
			want := map[string]string{}
			for k, v := range tc.want {
				want[k] = shown(v)
			}
			assert.Equal(want, got)
			for flag, s := range got {
				if s == "0" || s == "0s" {
					assert.Contains([]string{"0", "0s"}, shown(tc.want[flag]), "--%s shows %s, its default is not", flag, s)
				}
			}
		})
	}
}

// commands walks every command of the app with the path that names it.
func commands(path []string, cmds []*cli.Command, f func(path []string, c *cli.Command)) {
	for _, c := range cmds {
		if c.Name == "help" {
			continue
		}
		p := append(append([]string{}, path...), c.Name)
		f(p, c)
		commands(p, c.Subcommands, f)
	}
}

// TestHelpOneStyle: every command's --help writes defaults one way, "(default: …)", after the
// usage (never within it), and marks each flag that must be given "(required)", from Required.
func TestHelpOneStyle(t *testing.T) {
	commands(nil, newApp().Commands, func(path []string, c *cli.Command) {
		t.Run(strings.Join(path, " "), func(t *testing.T) {
			assert := assert.New(t)
			_, marked := helpFlags(t, path...)
			for _, f := range c.Flags {
				df, ok := f.(cli.DocGenerationFlag)
				if !ok {
					continue
				}
				name := f.Names()[0]
				line := cli.FlagStringer(f)
				assert.Equal(strings.Count(line, "(default"), strings.Count(line, "(default: "), "--%s: defaults are written (default: …): %s", name, line)
				assert.LessOrEqual(strings.Count(line, "(default: "), 1, "--%s: one default: %s", name, line)
				assert.NotContains(df.GetUsage(), "(required)", "--%s: Required says it, not the usage", name)
				r, ok := f.(cli.RequiredFlag)
				assert.Equal(ok && r.IsRequired(), marked[name], "--%s: marked required exactly when it is", name)
			}
		})
	})
}

// TestAskCommand: `cocoon ask` joins its arguments into the question as `ollama run` does, reads it
// from stdin for "-", takes the client's address as HOST:PORT, and its errors are one line
// prefixed "cocoon:".
func TestAskCommand(t *testing.T) {
	var prompts []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []struct{ Content string } `json:"messages"`
		}
		if r.URL.Path != "/v1/chat/completions" || json.NewDecoder(r.Body).Decode(&req) != nil || len(req.Messages) == 0 {
			http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
			return
		}
		prompts = append(prompts, req.Messages[len(req.Messages)-1].Content)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(api.Close)
	hostPort := strings.TrimPrefix(api.URL, "http://")

	testCases := map[string]struct {
		args       []string
		stdin      string
		wantPrompt string
		wantOut    string
		wantCode   int
		wantErr    string
	}{
		"words joined":       {args: []string{"hello", "world"}, wantPrompt: "hello world", wantOut: "ok\n"},
		"one quoted":         {args: []string{"why is the sky blue"}, wantPrompt: "why is the sky blue", wantOut: "ok\n"},
		"stdin":              {args: []string{"-"}, stdin: "from stdin", wantPrompt: "from stdin", wantOut: "ok\n"},
		"no question":        {wantCode: 2, wantErr: "cocoon: ask: no question: give it as arguments"},
		"bad client address": {args: []string{"--client", "ftp://x", "hi"}, wantCode: 1, wantErr: `cocoon: ask: client URL "ftp://x": scheme "ftp" is not http or https; want http://HOST:PORT or HOST:PORT`},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			prompts = nil
			var stdout, stderr bytes.Buffer
			app := newApp()
			app.Reader, app.Writer, app.ErrWriter = strings.NewReader(tc.stdin), &stdout, io.Discard
			args := append([]string{"cocoon", "ask", "--client", hostPort, "--model", "m"}, tc.args...)
			code := exitCode(&stderr, app.Run(args))
			assert.Equal(tc.wantCode, code)
			if tc.wantErr != "" {
				assert.True(strings.HasPrefix(stderr.String(), tc.wantErr), stderr.String())
				assert.Equal(1, strings.Count(stderr.String(), "\n"), "one line")
				return
			}
			assert.Empty(stderr.String())
			assert.Equal([]string{tc.wantPrompt}, prompts)
			assert.Equal(tc.wantOut, stdout.String())
		})
	}
}
