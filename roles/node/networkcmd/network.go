// Package networkcmd is `cocoon network`: the live network as its registry describes it, the
// listed proxies with their endpoints and whether they answer an attested dial, the allowed proxy
// and worker images and models, prices, the coefficient cap and the registry version. Only main
// imports it; it reads the chain through the functions main hands it (chaincmd's), so that it
// names and opens the chain exactly as `cocoon chain` does.
package networkcmd

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/sim"
	"github.com/cocoon-network/cocoon/settle/chain"
	"github.com/cocoon-network/cocoon/settle/contracts"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// Network is what `cocoon network` shows (its --json output).
type Network struct {
	Registry     string   `json:"registry"`
	Version      uint32   `json:"version"`
	Owner        string   `json:"owner"`
	Params       Params   `json:"params"`
	ProxyImages  []string `json:"proxy_images"`
	WorkerImages []string `json:"worker_images"`
	Models       []string `json:"models"`
	Proxies      []Proxy  `json:"proxies"`
}

// Params are the registry's prices, stakes, delays and coefficient cap.
type Params struct {
	PricePerToken     uint64 `json:"price_per_token"`      // nanoTON per adjusted token, clients pay
	WorkerFeePerToken uint64 `json:"worker_fee_per_token"` // nanoTON per adjusted token, workers earn
	PromptMult        uint32 `json:"prompt_mult"`          // 10000 = 1x
	CachedPromptMult  uint32 `json:"cached_prompt_mult"`
	CompletionMult    uint32 `json:"completion_mult"`
	ReasoningMult     uint32 `json:"reasoning_mult"`
	MinProxyStake     uint64 `json:"min_proxy_stake"`  // nanoTON
	MinClientStake    uint64 `json:"min_client_stake"` // nanoTON
	ClientCloseDelay  uint32 `json:"client_close_delay"`
	ProxyCloseDelay   uint32 `json:"proxy_close_delay"` // seconds
	// MaxCoefficient is as the registry holds it (0: written before the field existed);
	// CoefficientCap is what proxies apply (1000 = 1x).
	MaxCoefficient uint32 `json:"max_coefficient"`
	CoefficientCap uint32 `json:"coefficient_cap"`
}

// Proxy is a listed proxy and what an attested dial to its client endpoint found.
type Proxy struct {
	PaymentKey     string `json:"payment_key"`
	Contract       string `json:"contract"`
	WorkerEndpoint string `json:"worker_endpoint"`
	ClientEndpoint string `json:"client_endpoint"`
	// Answered: the dial completed an attested handshake with a proxy; otherwise Error says why not.
	Answered    bool   `json:"answered"`
	Error       string `json:"error,omitempty"`
	DialMillis  int64  `json:"dial_ms,omitempty"`
	Attestation string `json:"attestation,omitempty"` // tdx or simulated
	ImageHash   string `json:"image_hash,omitempty"`
	// ImageAllowed: the registry allows the attested image; PaymentKeyMatches: the proxy attests the
	// payment key the registry lists for it (what clients and workers check before paying).
	ImageAllowed      bool   `json:"image_allowed"`
	PaymentKeyMatches bool   `json:"payment_key_matches"`
	AttestedKey       string `json:"attested_payment_key,omitempty"` // when it differs
	// SharedEndpoint: another listed proxy names one of this one's endpoints too, so nobody can
	// tell which payment key belongs there (contracts.Registry.ProxyByEndpoint finds none).
	SharedEndpoint bool `json:"shared_endpoint,omitempty"`
}

// Options say how the proxies are dialled.
type Options struct {
	AllowSimulated bool          // accept proxies attested by the development root of trust
	SimDir         string        // that root's directory
	Collateral     string        // PCCS or Intel PCS base URL; "": Intel PCS
	CacheDir       string        // collateral cache; "": the user cache directory
	Timeout        time.Duration // per dial, handshake included
	Version        string        // the software version announced to the proxies
	Log            zerolog.Logger
}

// dialFunc reaches a proxy at endpoint and returns its verified attestation.
type dialFunc func(ctx context.Context, endpoint string) (*attest.Peer, error)

// maxDials is how many proxies Survey dials at once.
const maxDials = 32

// Survey reads the registry and dials the client endpoint of every listed proxy, up to maxDials
// at once, each within o.Timeout.
func Survey(ctx context.Context, ch chain.Chain, registry ton.AccountID, o Options) (Network, error) {
	dial, err := dialer(o)
	if err != nil {
		return Network{}, err
	}
	return survey(ctx, ch, registry, o.Timeout, dial)
}

func survey(ctx context.Context, ch chain.Chain, registry ton.AccountID, timeout time.Duration, dial dialFunc) (Network, error) {
	r, err := chain.Registry(ctx, ch, registry)
	if err != nil {
		return Network{}, fmt.Errorf("read registry %s: %w", registry.ToRaw(), err)
	}
	n := describe(registry, r)
	var wg sync.WaitGroup
	busy := make(chan struct{}, maxDials)
	for i, entry := range r.Proxies {
		wg.Go(func() {
			busy <- struct{}{}
			defer func() { <-busy }()
			dctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			start := time.Now()
			peer, err := dial(dctx, entry.ClientEndpoint)
			check(&n.Proxies[i], r, entry, peer, err, time.Since(start))
		})
	}
	wg.Wait()
	return n, nil
}

// describe is the registry as Network, its proxies not dialled yet.
func describe(registry ton.AccountID, r contracts.Registry) Network {
	p := r.Params
	n := Network{
		Registry: registry.ToRaw(), Version: r.Version, Owner: r.Owner.ToRaw(),
		Params: Params{
			PricePerToken: p.PricePerToken, WorkerFeePerToken: p.WorkerFeePerToken,
			PromptMult: p.PromptMult, CachedPromptMult: p.CachedPromptMult,
			CompletionMult: p.CompletionMult, ReasoningMult: p.ReasoningMult,
			MinProxyStake: p.MinProxyStake, MinClientStake: p.MinClientStake,
			ClientCloseDelay: p.ClientCloseDelay, ProxyCloseDelay: p.ProxyCloseDelay,
			MaxCoefficient: p.MaxCoefficient, CoefficientCap: p.CoefficientCap(),
		},
		ProxyImages: hexList(r.ProxyImages), WorkerImages: hexList(r.WorkerImages), Models: hexList(r.Models),
		Proxies: make([]Proxy, len(r.Proxies)),
	}
	for i, e := range r.Proxies {
		n.Proxies[i] = Proxy{PaymentKey: hex.EncodeToString(e.Key), Contract: e.Contract.ToRaw(),
			WorkerEndpoint: e.WorkerEndpoint, ClientEndpoint: e.ClientEndpoint}
		for _, ep := range []string{e.WorkerEndpoint, e.ClientEndpoint} {
			if _, ok := r.ProxyByEndpoint(ep); !ok {
				n.Proxies[i].SharedEndpoint = true
			}
		}
	}
	return n
}

// check fills in what the dial to entry's client endpoint found.
func check(p *Proxy, r contracts.Registry, entry contracts.ProxyEntry, peer *attest.Peer, err error, took time.Duration) {
	if err != nil {
		p.Error = err.Error()
		if errors.Is(err, attest.ErrSimulatedNotAllowed) {
			p.Error += " (--allow-simulated accepts it)"
		}
		return
	}
	p.Answered, p.DialMillis = true, took.Milliseconds()
	p.Attestation, p.ImageHash = peer.Label(), peer.ImageHash.String()
	p.ImageAllowed = r.ProxyImageAllowed(peer.ImageHash)
	var attested []byte
	if peer.Claims != nil {
		attested = peer.Claims.PaymentKey
	}
	p.PaymentKeyMatches = bytes.Equal(attested, entry.Key)
	if !p.PaymentKeyMatches {
		p.AttestedKey = hex.EncodeToString(attested)
	}
}

func hexList(list [][32]byte) []string {
	out := make([]string, len(list))
	for i, h := range list {
		out[i] = hex.EncodeToString(h[:])
	}
	return out
}

// dialer dials as a client does: an attested QUIC connection to a proxy of any image (whether the
// registry allows it is reported, not required), closed as soon as both ends are verified.
func dialer(o Options) (dialFunc, error) {
	cacheDir := o.CacheDir
	if cacheDir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			cacheDir = filepath.Join(d, "cocoon", "collateral")
		}
	}
	collateral, err := attest.NewCollateralGetter(attest.CollateralConfig{URL: o.Collateral, Dir: cacheDir})
	if err != nil {
		return nil, fmt.Errorf("attestation collateral: %w", err)
	}
	roots := []attest.TrustedRoot{attest.IntelRoot(collateral)}
	// The development root is known even when not allowed, so that a simulated proxy is refused as
	// simulated rather than as signed by a stranger.
	if root, err := sim.OpenPublic(o.SimDir); err == nil {
		roots = append(roots, root.TrustedRoot())
	} else if o.AllowSimulated && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("development root of trust: %w", err)
	}
	policy := attest.Policy{AllowSimulated: o.AllowSimulated,
		Roles: map[attest.Role]attest.RolePolicy{attest.RoleProxy: {ImageHashes: []string{attest.AnyImage}}}}
	verifier, err := attest.NewVerifier(attest.VerifierConfig{Roots: roots, Policy: policy})
	if err != nil {
		return nil, err
	}
	id, err := transport.NewIdentity(transport.IdentityConfig{Claims: attest.Claims{Role: attest.RoleClient, Version: o.Version}})
	if err != nil {
		return nil, fmt.Errorf("make client certificate: %w", err)
	}
	tc := transport.Config{Identity: id, Verifier: verifier, PeerRoles: []attest.Role{attest.RoleProxy},
		SoftwareVersion: o.Version, Log: o.Log, HandshakeTimeout: o.Timeout, PingInterval: -1}
	return func(ctx context.Context, endpoint string) (*attest.Peer, error) {
		c, err := transport.Dial(ctx, endpoint, tc)
		if err != nil {
			return nil, err
		}
		peer := c.Peer()
		_ = c.Close(wire.CodeOK, "")
		<-c.Done() // its goroutines have ended
		return peer, nil
	}, nil
}
