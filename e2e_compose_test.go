package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// composeProcs runs the services of docker-compose.yml as processes on loopback: each service's
// command and environment as the file has them, with the compose network's names and ports
// mapped to free loopback ports and each volume to a directory (shared by the services that
// mount it, as a named volume is).
type composeProcs struct {
	t       *testing.T
	c       composeFile
	replace []string // old, new pairs applied to every argument and variable
	volumes map[string]string
}

func newComposeProcs(t *testing.T) *composeProcs {
	cp := &composeProcs{t: t, c: loadCompose(t), volumes: map[string]string{}}
	// Services reach each other by service name; every port a service listens on is mapped.
	ports := map[string]string{
		"chain:8081": freePort(t, "tcp"), "proxy:4433": freePort(t, "udp"),
		"proxy:9090": freePort(t, "tcp"), "worker:9091": freePort(t, "tcp"), "client:8080": freePort(t, "tcp"),
	}
	for name, addr := range ports {
		_, port, _ := strings.Cut(name, ":")
		cp.replace = append(cp.replace, name, addr, "0.0.0.0:"+port, addr, "127.0.0.1:"+port, addr)
	}
	return cp
}

// args and env are a service's command line and environment, mapped to this machine.
func (cp *composeProcs) args(name string) (args, env []string) {
	s := cp.c.Services[name]
	mounts := map[string]string{}
	for _, v := range s.Volumes {
		dir, ok := cp.volumes[v.Source]
		if !ok {
			dir = cp.t.TempDir()
			cp.volumes[v.Source] = dir
		}
		mounts[v.Target] = dir
	}
	mapValue := func(v string) string {
		for target, dir := range mounts {
			if v == target || strings.HasPrefix(v, target+"/") {
				return dir + strings.TrimPrefix(v, target)
			}
		}
		return strings.NewReplacer(cp.replace...).Replace(v)
	}
	for _, a := range s.Command {
		args = append(args, mapValue(a))
	}
	for k, v := range s.Environment {
		env = append(env, k+"="+mapValue(v))
	}
	return args, env
}

// health is the URL a service's healthcheck fetches, mapped.
func (cp *composeProcs) health(name string) string {
	hc := cp.c.Services[name].Healthcheck
	require.NotNil(cp.t, hc, "%s has a healthcheck", name)
	// The check runs inside the service's container: its 127.0.0.1 is the service's name.
	u := strings.Replace(hc.Test[len(hc.Test)-1], "//127.0.0.1:", "//"+name+":", 1)
	return strings.NewReplacer(cp.replace...).Replace(u)
}

// startService starts a long-running service and waits for its healthcheck.
func (cp *composeProcs) startService(name string) *proc {
	args, env := cp.args(name)
	p := startWithEnv(cp.t, name, env, args...)
	waitHTTP(cp.t, cp.health(name), 200)
	return p
}

// startWithEnv is start with the environment extended by env (the variables are set only while
// the process starts; the test runs alone, not in parallel).
func startWithEnv(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	p := start(t, name, args...)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		require.NoError(t, os.Unsetenv(k))
	}
	return p
}

// TestComposeAsProcesses runs docker-compose.yml's services as processes, in its depends_on
// order, with its commands and environment: the chain, the one-shot setup, the proxy, the worker
// and the client. The client, which knows only the registry, gets a paid answer: the compose
// wiring (the constant addresses, the keys setup writes, the images it allows) really works.
func TestComposeAsProcesses(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	cp := newComposeProcs(t)
	cp.startService("chain")

	args, env := cp.args("setup")
	ctx, cancel := context.WithTimeout(context.Background(), timescale(60*time.Second))
	defer cancel()
	setup := exec.CommandContext(ctx, cocoonBinary(t), args...)
	setup.Env = append(os.Environ(), env...)
	out, err := setup.CombinedOutput()
	require.NoError(err, "setup:\n%s", out)
	assert.Contains(string(out), "registry")
	_, err = os.Stat(filepath.Join(cp.volumes["dev-keys"], "proxy-payment.key"))
	require.NoError(err, "setup wrote the proxy's payment key")

	proxy := cp.startService("proxy")
	cp.startService("worker")
	cp.startService("client")
	proxyStats := strings.TrimSuffix(cp.health("proxy"), "/healthz")
	waitFor(t, "the worker to find the proxy in the registry", func() bool {
		var st struct {
			Workers []json.RawMessage `json:"workers"`
		}
		return getJSON(proxyStats+"/jsonstats", &st) == nil && len(st.Workers) == 1
	})
	api := strings.TrimSuffix(cp.health("client"), "/healthz")
	var cost uint64
	waitFor(t, "a paid answer through the proxy the registry lists", func() bool {
		resp := post(t, ctx, api+"/v1/chat/completions", chatBody("cocoon-builtin", false, ""))
		defer resp.Body.Close()
		var got struct {
			Usage struct {
				TotalCost uint64 `json:"total_cost"`
			} `json:"usage"`
		}
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&got) != nil {
			return false
		}
		cost = got.Usage.TotalCost
		return true
	})
	assert.Positive(cost, "payments are on")
	select {
	case <-proxy.done:
		t.Fatal(fmt.Sprintf("the proxy exited:\n%s", proxy.out.String()))
	default:
	}
}
