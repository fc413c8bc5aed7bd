package node

import (
	"crypto/ed25519"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/roles/node/nodetest"
	"github.com/cocoon-network/cocoon/roles/proxy"
	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/chaincmd"
	"github.com/cocoon-network/cocoon/settle/contracts"
)

// TestDiscoveryFromRegistry: a worker and a client given only the registry find the proxy it
// lists and are served and charged through it; a proxy registered later is connected without a
// restart, and one removed from the registry is left.
func TestDiscoveryFromRegistry(t *testing.T) {
	n := newTestNet(t, 90*time.Second, "owner", "worker", "client", "operator-a", "payment-a", "operator-b", "payment-b")
	n.cfg.Payments.RegistryInterval = config.Duration(100 * time.Millisecond)
	require := require.New(t)
	ctx, ch, keys, log, data, cfg, run := n.ctx, n.ch, n.keys, n.log, n.data, n.cfg, n.run
	registry := n.registry(contracts.DefaultParams())
	withKey := func(name, _ string) config.Config { return n.withKey(name, registry) }
	// The registry allows the images this binary presents as proxy and worker, and the model.
	proxyImage, err := SimulatedMeasurements(withKey("payment-a", "proxy"), attest.RoleProxy)
	require.NoError(err)
	workerImage, err := SimulatedMeasurements(withKey("worker", "worker"), attest.RoleWorker)
	require.NoError(err)
	_, weights, err := Engine(cfg, zerolog.Nop())
	require.NoError(err)
	model, err := hex.DecodeString(strings.TrimPrefix(weights, "sha256:"))
	require.NoError(err)
	allow := func(list contracts.List, h [32]byte, allowed bool) {
		require.NoError(chaincmd.Allow(ctx, ch, io.Discard, keys["owner"], registry, list, h, allowed))
	}
	allow(contracts.ListProxyImages, proxyImage.ImageHash(), true)
	allow(contracts.ListWorkerImages, workerImage.ImageHash(), true)
	allow(contracts.ListModels, [32]byte(model), true)
	// startProxy deploys a proxy contract, runs the proxy and lists it in the registry.
	startProxy := func(name string) (*proxy.Proxy, ton.AccountID) {
		pay := n.pub("payment-" + name)
		contract := n.proxyContract(registry, "operator-"+name, "payment-"+name)
		pc := withKey("payment-"+name, "proxy")
		pc.Data, pc.Attestation.SimDir = filepath.Join(data, "proxy-"+name), cfg.SimRoot()
		require.NoError(os.MkdirAll(pc.Data, 0o700))
		pc.Payments.ProxyContract = config.Address{AccountID: contract, Set: true}
		require.NoError(pc.Validate("proxy"))
		m, err := proxyMeter(ctx, n.set, pc, log)
		require.NoError(err)
		n.closeAfter(m.Close)
		reg, err := openRegistry(ctx, n.set, pc, log)
		require.NoError(err)
		p, err := BuildProxy(pc, "test", log, m, reg)
		require.NoError(err)
		run(m.Run)
		run(p.Run)
		run(reg.Run)
		ep := p.Addr(ctx).String()
		require.NoError(chaincmd.SetProxy(ctx, ch, io.Discard, keys["owner"], registry, pay,
			&contracts.ProxyEntry{Key: pay, Contract: contract, WorkerEndpoint: ep, ClientEndpoint: ep}))
		return p, contract
	}
	pa, contractA := startProxy("a")
	require.NoError(chain.TopUp(ctx, ch, keys["client"], contractA, 3_000_000_000))

	wcfg := withKey("worker", "worker")
	wcfg.Worker.Proxies = nil
	require.NoError(wcfg.Validate("worker"), "a worker needs only the registry")
	wp, err := party(ctx, n.set, wcfg, "worker", settle.KindWorkerEarned, log)
	require.NoError(err)
	wreg, err := openRegistry(ctx, n.set, wcfg, log)
	require.NoError(err)
	w, err := BuildWorker(wcfg, "test", log, wp, wreg)
	require.NoError(err)
	run(w.Run)
	run(wreg.Run)

	ccfg := withKey("client", "client")
	ccfg.Client.Proxies = nil
	require.NoError(ccfg.Validate("client"), "a client needs only the registry")
	cp, err := party(ctx, n.set, ccfg, "client", settle.KindClientCharged, log)
	require.NoError(err)
	creg, err := openRegistry(ctx, n.set, ccfg, log)
	require.NoError(err)
	cl, err := BuildClient(ccfg, "test", log, cp, creg)
	require.NoError(err)
	run(cl.Run)
	run(creg.Run)

	nodetest.WaitFor(t, "the worker to register with the listed proxy", func() bool { return pa.WorkerCount() == 1 })
	api := "http://" + cl.Addr().String() + "/v1/chat/completions"
	nodetest.WaitFor(t, "a paid answer through the listed proxy", func() bool {
		resp := nodetest.Post(t, ctx, api, nodetest.ChatBody("cocoon-builtin", false, ""))
		defer resp.Body.Close()
		return resp.StatusCode == 200
	})
	nodetest.WaitFor(t, "the client's charged state", func() bool {
		_, ok := cp.States.Latest(keys["payment-a"].Public().(ed25519.PublicKey))
		return ok
	})

	// A proxy listed later is found without a restart.
	pb, _ := startProxy("b")
	nodetest.WaitFor(t, "the worker to find the new proxy", func() bool { return pb.WorkerCount() == 1 })

	// A proxy removed from the registry is left.
	require.NoError(chaincmd.SetProxy(ctx, ch, io.Discard, keys["owner"], registry, keys["payment-a"].Public().(ed25519.PublicKey), nil))
	nodetest.WaitFor(t, "the worker to leave the removed proxy", func() bool { return pa.WorkerCount() == 0 })

	// A worker image taken off the registry's list is dropped by the proxy, and the worker's
	// stats say why.
	allow(contracts.ListWorkerImages, workerImage.ImageHash(), false)
	nodetest.WaitFor(t, "the proxy to drop the worker", func() bool { return pb.WorkerCount() == 0 })
	nodetest.WaitFor(t, "the worker to say why", func() bool {
		var st struct {
			Proxies []struct {
				Refused string `json:"refused"`
			} `json:"proxies"`
		}
		if err := nodetest.GetJSON("http://"+w.StatsAddr(ctx).String()+"/jsonstats", &st); err != nil {
			return false
		}
		for _, p := range st.Proxies {
			if strings.Contains(p.Refused, "worker list") {
				return true
			}
		}
		return false
	})
}
