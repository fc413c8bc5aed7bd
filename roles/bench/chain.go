package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/cocoon-network/cocoon/gpu/scripted"
)

// chainSetup is a local chain served by `cocoon chain serve` and the development network `cocoon
// demo setup` laid out on it: the registry lists the bench's proxy with its contract, allows the
// images its proxy and worker present, and the client's wallet is funded and deposited.
type chainSetup struct {
	url, keys               string
	registry, proxyContract string
}

// flags are a role's payment flags, with the key setup derived for it (keyName in keys).
func (c *chainSetup) flags(keyName string) []string {
	return []string{"--chain", "toncenter", "--chain-url", c.url, "--registry", c.registry,
		"--key", filepath.Join(c.keys, keyName+".key")}
}

// startChain serves the local chain and lays the network out on it for a proxy at a port picked
// now (n.proxyAddr) and a worker in front of engineURL with the weights digest.
func (n *network) startChain(ctx context.Context, engineURL, digest string) error {
	web, err := loopbackPort("tcp")
	if err != nil {
		return err
	}
	if n.proxyAddr, err = loopbackPort("udp"); err != nil {
		return err
	}
	c := &chainSetup{url: "http://" + web, keys: filepath.Join(n.dir, "keys")}
	if _, err := n.spawn("chain", "serve", "--data", filepath.Join(n.dir, "chain"), "--listen", web); err != nil {
		return err
	}
	if err := n.waitHTTP(ctx, c.url+"/api/v2/getAddressInformation?address=0:"+strings.Repeat("0", 64)); err != nil {
		return err
	}
	args := []string{"demo", "setup", "--chain-url", c.url, "--keys", c.keys, "--proxy", n.proxyAddr,
		"--model", scripted.DefaultModel, "--engine-url", engineURL, "--weights-digest", digest, "--deposit", "200"}
	out, err := n.runTool(ctx, args...)
	if err != nil {
		return err
	}
	if out, err = n.runTool(ctx, append(args, "--print")...); err != nil {
		return err
	}
	if c.registry, c.proxyContract, err = parseSetupPrint(out); err != nil {
		return err
	}
	n.chain = c
	n.o.logf("payments on: local chain at %s, registry %s", c.url, c.registry)
	return nil
}

// runTool runs a cocoon command to its end, without the environment's COCOON_* settings.
func (n *network) runTool(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.o.Bin, args...)
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("bench: cocoon %s: %w: %s", strings.Join(args[:2], " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// parseSetupPrint reads the registry and the first proxy contract from `cocoon demo setup --print`.
func parseSetupPrint(out []byte) (registry, proxyContract string, err error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 2 && f[0] == "registry":
			registry = f[1]
		case len(f) >= 3 && f[0] == "proxy" && f[1] == "contract" && proxyContract == "":
			proxyContract = f[2]
		}
	}
	if registry == "" || proxyContract == "" {
		return "", "", fmt.Errorf("bench: cocoon demo setup --print: no registry or proxy contract in %q", out)
	}
	return registry, proxyContract, nil
}
