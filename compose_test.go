package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	// The maintained continuation of gopkg.in/yaml.v3 (same API), already in the module graph
	// through testify, so this test adds no dependency.
	"go.yaml.in/yaml/v3"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/node/demo"
)

// roles are the compose services that run the cocoon image, one per role.
var roles = []string{"proxy", "worker", "client"}

// composeFile is the part of docker-compose.yml the tests look at. The types below accept both
// the short and the long syntax compose allows for each field.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Build       any           `yaml:"build"`
	Command     stringList    `yaml:"command"`
	Environment envMap        `yaml:"environment"`
	Ports       []portSpec    `yaml:"ports"`
	Volumes     []volumeMount `yaml:"volumes"`
	Healthcheck *healthcheck  `yaml:"healthcheck"`
	DependsOn   dependsOn     `yaml:"depends_on"`
	Restart     string        `yaml:"restart"`
}

// dependsOn is depends_on: a list of services (started first) or a map of service to condition.
type dependsOn map[string]string

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = dependsOn{}
	if n.Kind == yaml.SequenceNode {
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		for _, s := range list {
			(*d)[s] = "service_started"
		}
		return nil
	}
	var m map[string]struct {
		Condition string `yaml:"condition"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		(*d)[k] = v.Condition
	}
	return nil
}

type healthcheck struct {
	Test stringList `yaml:"test"`
}

// stringList is a command or healthcheck test: a list, or a string split on spaces.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = strings.Fields(n.Value)
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}

// envMap is environment: a map, or a list of NAME=value.
type envMap map[string]string

func (e *envMap) UnmarshalYAML(n *yaml.Node) error {
	*e = envMap{}
	if n.Kind == yaml.MappingNode {
		var m map[string]*string
		if err := n.Decode(&m); err != nil {
			return err
		}
		for k, v := range m {
			(*e)[k] = ""
			if v != nil {
				(*e)[k] = *v
			}
		}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		(*e)[k] = v
	}
	return nil
}

// portSpec is a published port: "[host_ip:][published:]target[/protocol]" or the long syntax.
type portSpec struct {
	HostIP    string `yaml:"host_ip"`
	Published string `yaml:"published"`
	Target    string `yaml:"target"`
	Protocol  string `yaml:"protocol"`
}

func (p *portSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		type plain portSpec
		return n.Decode((*plain)(p))
	}
	s, proto, _ := strings.Cut(n.Value, "/")
	p.Protocol = proto
	parts := strings.Split(s, ":")
	switch len(parts) {
	case 1:
		p.Target = parts[0]
	case 2:
		p.Published, p.Target = parts[0], parts[1]
	case 3:
		p.HostIP, p.Published, p.Target = parts[0], parts[1], parts[2]
	default:
		return fmt.Errorf("port %q: cannot parse (IPv6 host addresses need the long syntax here)", n.Value)
	}
	return nil
}

// volumeMount is "source:target[:mode]" or the long syntax.
type volumeMount struct {
	Type   string `yaml:"type"`
	Source string `yaml:"source"`
	Target string `yaml:"target"`
}

func (v *volumeMount) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		type plain volumeMount
		return n.Decode((*plain)(v))
	}
	parts := strings.Split(n.Value, ":")
	if len(parts) == 1 {
		v.Type, v.Target = "volume", parts[0] // anonymous volume
		return nil
	}
	v.Source, v.Target = parts[0], parts[1]
	v.Type = "volume"
	if strings.HasPrefix(v.Source, ".") || strings.HasPrefix(v.Source, "/") || strings.HasPrefix(v.Source, "~") {
		v.Type = "bind"
	}
	return nil
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("docker-compose.yml")
	require.NoError(t, err)
	var c composeFile
	require.NoError(t, yaml.Unmarshal(b, &c))
	return c
}

func TestComposeServices(t *testing.T) {
	c := loadCompose(t)
	for _, role := range roles {
		t.Run(role, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			s, ok := c.Services[role]
			require.True(ok, "docker-compose.yml has no %s service", role)

			assert.NotNil(s.Build, "%s is built from the Dockerfile", role)
			// The image's ENTRYPOINT is cocoon, so the command starts with the role's subcommand.
			require.NotEmpty(s.Command, "%s has no command", role)
			assert.Equal(role, s.Command[0], "%s runs `cocoon %s`", role, role)

			for name := range s.Environment {
				assert.True(strings.HasPrefix(name, "COCOON_"), "%s: environment variable %s is not named COCOON_*", role, name)
			}
			assert.Contains(s.Environment, "COCOON_LOG_LEVEL", role)

			// Exec form (CMD, not CMD-SHELL): the check needs no shell in the image.
			require.NotNil(s.Healthcheck, "%s has no healthcheck", role)
			require.GreaterOrEqual(len(s.Healthcheck.Test), 3, "%s healthcheck: %q", role, s.Healthcheck.Test)
			assert.Equal("CMD", s.Healthcheck.Test[0], "%s healthcheck must be exec form", role)
			assert.True(strings.HasSuffix(s.Healthcheck.Test[len(s.Healthcheck.Test)-1], "/healthz"),
				"%s healthcheck must hit /healthz: %q", role, s.Healthcheck.Test)
		})
	}
}

func TestComposeClientPortIsLocal(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	client := loadCompose(t).Services["client"]
	require.NotEmpty(client.Ports, "the client publishes its OpenAI API")
	api := false
	for _, p := range client.Ports {
		// The API spends the client's TON: it must never be published beyond the host.
		assert.Equal("127.0.0.1", p.HostIP, "client port %+v must be bound to 127.0.0.1", p)
		api = api || p.Target == "8080"
	}
	assert.True(api, "client publishes port 8080: %+v", client.Ports)
}

func TestComposeSharedSimRoot(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	c := loadCompose(t)
	sources := map[string]bool{}
	for _, role := range roles {
		s := c.Services[role]
		dir := s.Environment["COCOON_SIM_DIR"]
		require.NotEmpty(dir, "%s sets COCOON_SIM_DIR", role)
		i := slices.IndexFunc(s.Volumes, func(v volumeMount) bool { return v.Target == dir })
		require.GreaterOrEqual(i, 0, "%s mounts a volume at COCOON_SIM_DIR=%s", role, dir)
		v := s.Volumes[i]
		assert.Equal("volume", v.Type, "%s: the sim root is a named volume", role)
		assert.NotEmpty(v.Source, "%s: the sim root volume is named, not anonymous", role)
		assert.Contains(c.Volumes, v.Source, "volume %s is declared at the top level", v.Source)
		sources[v.Source] = true
	}
	assert.Len(sources, 1, "proxy, worker and client share one sim volume so they trust each other: %v", sources)
}

// dockerInstruction is one instruction of a Dockerfile, continuation lines joined.
type dockerInstruction struct {
	cmd  string // upper case: FROM, RUN, COPY, …
	args string
}

// parseDockerfile splits a Dockerfile into stages of instructions. Enough for the assertions
// below, not a full parser: no heredocs, no escape directive.
func parseDockerfile(t *testing.T, path string) [][]dockerInstruction {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var stages [][]dockerInstruction
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := dockerInstruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	for line := range strings.Lines(string(b)) {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue // comments, also inside continued instructions
		}
		if body, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	return stages
}

func TestComposeDockerfile(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	stages := parseDockerfile(t, "Dockerfile")
	require.GreaterOrEqual(len(stages), 2, "multi-stage build")
	final := stages[len(stages)-1]

	var entrypoint []string
	var copiesEmulator, ldconfig bool
	var user, runs string
	for _, in := range final {
		switch in.cmd {
		case "ENTRYPOINT":
			require.NoError(json.Unmarshal([]byte(in.args), &entrypoint), "ENTRYPOINT must be exec form: %s", in.args)
		case "COPY":
			copiesEmulator = copiesEmulator || strings.Contains(in.args, "libemulator.so")
		case "RUN":
			ldconfig = ldconfig || strings.Contains(in.args, "ldconfig")
			runs += in.args + "\n"
		case "USER":
			user = in.args
		}
	}
	require.NotEmpty(entrypoint, "final stage has an ENTRYPOINT")
	assert.Contains(entrypoint[0], "cocoon", "ENTRYPOINT runs cocoon")
	// tongo's TVM emulator is a cgo binding to a shared library: without it the binary does not start.
	assert.True(copiesEmulator, "final stage copies tongo's libemulator.so")
	assert.True(ldconfig, "final stage runs ldconfig so the loader finds libemulator.so")
	assert.NotEmpty(user, "final stage sets a USER")
	assert.NotContains([]string{"root", "0", "0:0", "root:root"}, user, "final stage runs as non-root")

	// Every tool the compose healthchecks call must be installed in the image.
	c := loadCompose(t)
	for _, role := range append([]string{"chain"}, roles...) {
		hc := c.Services[role].Healthcheck
		if hc == nil || len(hc.Test) < 2 {
			continue
		}
		tool := hc.Test[1]
		if tool != "cocoon" && !strings.HasPrefix(tool, "/") {
			assert.Contains(runs, tool, "%s healthcheck runs %s, which the Dockerfile's final stage must install", role, tool)
		}
	}
}

// flagValues are the values of --name in a command line ("--name value" or "--name=value").
func flagValues(cmd []string, name string) []string {
	var out []string
	for i, a := range cmd {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			out = append(out, v)
		} else if a == "--"+name && i+1 < len(cmd) {
			out = append(out, cmd[i+1])
		}
	}
	return out
}

// TestComposePayments: the compose network settles on a shared chain. A chain service serves it,
// a one-shot setup lays the network out on it, and proxy, worker and client run with payments on
// that chain and the registry setup made, whose address (and the proxy contract's) follows from
// setup's seed; worker and client find the proxy in the registry, with no proxies list. They
// start in order: chain healthy, setup done, proxy healthy, then worker and client.
func TestComposePayments(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	c := loadCompose(t)

	chainSvc, ok := c.Services["chain"]
	require.True(ok, "docker-compose.yml has a chain service")
	require.GreaterOrEqual(len(chainSvc.Command), 2)
	assert.Equal([]string{"chain", "serve"}, []string(chainSvc.Command[:2]))
	assert.Equal([]string{"0.0.0.0:8081"}, flagValues(chainSvc.Command, "listen"), "the chain listens for the other containers")
	require.NotNil(chainSvc.Healthcheck, "the chain has a healthcheck")
	assert.Equal("CMD", chainSvc.Healthcheck.Test[0])
	assert.Empty(chainSvc.Ports, "the chain (and its faucet) is not published beyond the compose network")

	setup, ok := c.Services["setup"]
	require.True(ok, "docker-compose.yml has a setup service")
	require.GreaterOrEqual(len(setup.Command), 2)
	assert.Equal([]string{"demo", "setup"}, []string(setup.Command[:2]))
	assert.Equal("no", setup.Restart, "setup runs once")
	chainURL := flagValues(setup.Command, "chain-url")
	require.Len(chainURL, 1)
	assert.Equal("http://chain:8081", chainURL[0])
	assert.Equal(map[string]string{"chain": "service_healthy"}, map[string]string(setup.DependsOn))

	// The addresses the roles are given are those setup makes.
	seed := demo.DefaultSeed
	if s := flagValues(setup.Command, "seed"); len(s) == 1 {
		seed = s[0]
	}
	plan, err := demo.PlanSetup(demo.SetupOptions{ChainURL: chainURL[0], Seed: seed, Proxies: flagValues(setup.Command, "proxy")})
	require.NoError(err)
	require.Len(plan.Contracts, 1, "setup lists one proxy")
	assert.Equal([]string{"proxy:4433"}, flagValues(setup.Command, "proxy"), "setup lists the proxy where the other containers reach it")

	wantDeps := map[string]map[string]string{
		"proxy":  {"setup": "service_completed_successfully"},
		"worker": {"proxy": "service_healthy"},
		"client": {"proxy": "service_healthy"},
	}
	for _, role := range roles {
		s := c.Services[role]
		env := s.Environment
		assert.Equal("toncenter", env["COCOON_CHAIN"], "%s: payments on the shared chain", role)
		assert.Equal(chainURL[0], env["COCOON_CHAIN_URL"], role)
		var reg config.Address
		require.NoError(reg.UnmarshalText([]byte(env["COCOON_REGISTRY"])), "%s: COCOON_REGISTRY", role)
		assert.Equal(plan.Registry, reg.AccountID, "%s: the registry setup makes (`cocoon demo setup --print --proxy proxy:4433`)", role)
		assert.Equal(wantDeps[role], map[string]string(s.DependsOn), "%s depends_on", role)
		if role != "proxy" {
			assert.NotContains(env, "COCOON_PROXIES", "%s finds the proxies in the registry", role)
		}
	}
	var contract config.Address
	require.NoError(contract.UnmarshalText([]byte(c.Services["proxy"].Environment["COCOON_PROXY_CONTRACT"])))
	assert.Equal(plan.Contracts[0], contract.AccountID, "the proxy's contract is the one setup deploys")
	assert.Equal("/keys/proxy-payment.key", c.Services["proxy"].Environment["COCOON_KEY"], "the proxy attests the payment key setup lists")
	assert.Equal("/keys/client-wallet.key", c.Services["client"].Environment["COCOON_KEY"], "the client pays from the wallet setup funded")
}
