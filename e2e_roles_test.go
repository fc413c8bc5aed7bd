package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/config"
)

// runTheRoles is the ```sh block under README.md's "## Run the roles": one command a line, comments
// dropped.
func runTheRoles(t *testing.T) [][]string {
	t.Helper()
	f, err := os.Open("README.md")
	require.NoError(t, err)
	defer f.Close()
	var cmds [][]string
	section, inBlock := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			section = line == "## Run the roles"
		case !section:
		case strings.HasPrefix(line, "```"):
			if inBlock {
				return cmds
			}
			inBlock = strings.TrimPrefix(line, "```") == "sh"
		case inBlock:
			if i := strings.Index(line, " #"); i >= 0 {
				line = line[:i]
			}
			if words := strings.Fields(line); len(words) > 0 {
				cmds = append(cmds, words)
			}
		}
	}
	require.NoError(t, sc.Err())
	require.FailNow(t, `README.md has no "## Run the roles" section with a sh block`)
	return nil
}

// TestRunTheRoles runs README.md's "Run the roles" commands exactly as written, each as its own
// process from the repository root, and asks the client one question.
func TestRunTheRoles(t *testing.T) {
	cmds := runTheRoles(t)
	require.Len(t, cmds, 3, "Run the roles: a proxy, a worker and a client")
	cocoonBinary(t)

	var proxyStats, clientAPI string
	for _, words := range cmds {
		require.Equal(t, "cocoon", words[0], "%q", strings.Join(words, " "))
		require.GreaterOrEqual(t, len(words), 4, "%q: cocoon ROLE --config FILE", strings.Join(words, " "))
		require.Equal(t, "--config", words[2])
		role := words[1]
		c, err := config.Load(words[3])
		require.NoError(t, err)
		// The README's ports are fixed: say so plainly when something else holds one.
		switch role {
		case "proxy":
			proxyStats = c.Proxy.StatsListen
			requirePortFree(t, "udp", c.Proxy.Listen)
			requirePortFree(t, "tcp", c.Proxy.StatsListen)
		case "worker":
			requirePortFree(t, "tcp", c.Worker.StatsListen)
		case "client":
			clientAPI = c.Client.Listen
			requirePortFree(t, "tcp", c.Client.Listen)
		default:
			require.FailNow(t, "Run the roles runs proxy, worker and client", "not %q", role)
		}
	}
	require.NotEmpty(t, proxyStats, "the proxy's stats_listen")
	require.NotEmpty(t, clientAPI, "the client's listen")

	procs := make([]*proc, 0, len(cmds))
	for _, words := range cmds {
		procs = append(procs, start(t, words[1], words[1:]...))
	}
	running := func() {
		for _, p := range procs {
			select {
			case <-p.done:
				require.FailNow(t, p.name+" exited", "%s", p.out.String())
			default:
			}
		}
	}
	waitFor(t, "the client's /healthz", func() bool {
		running()
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + clientAPI + "/healthz") //nolint:noctx // polling loop
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	waitFor(t, "the worker registered at the proxy", func() bool {
		running()
		var st struct {
			Workers []json.RawMessage `json:"workers"`
		}
		return getJSON("http://"+proxyStats+"/jsonstats", &st) == nil && len(st.Workers) == 1
	})

	ctx, cancel := context.WithTimeout(context.Background(), timescale(30*time.Second))
	defer cancel()
	resp := post(t, ctx, "http://"+clientAPI+"/v1/chat/completions", chatBody("cocoon-builtin", false, ""))
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, 200, resp.StatusCode, "%s", body)
	require.Equal(t, "simulated", resp.Header.Get("X-Cocoon-Attestation"))
	require.Contains(t, string(body), `"chat.completion"`)
	for _, p := range procs {
		p.kill()
	}
}

func requirePortFree(t *testing.T, network, addr string) {
	t.Helper()
	var err error
	if network == "udp" {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp", addr); err == nil {
			c.Close()
		}
	} else {
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err == nil {
			l.Close()
		}
	}
	require.NoError(t, err, fmt.Sprintf("README.md's Run the roles needs %s %s, which is taken", network, addr))
}
