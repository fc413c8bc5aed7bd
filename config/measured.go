package config

import (
	"crypto/sha256"
	"encoding/json"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// measured is the part of a role's configuration its image hash covers: what decides which peers
// the node trusts, who sees a prompt and where money settles. It is built field by field from
// Config, so a new setting changes no image hash until it is added here on purpose (and
// TestEveryFieldClassified fails until it is classified either way).
//
// Left out on purpose: addresses and ports (listen, stats, proxies, collateral URL, chain
// endpoints), paths of state (data, sim_dir, collateral_dir, chain_data, model_dir), secrets
// (tokens and keys), the policy file (an allow-list of peers' hashes, see Digest), what peers see
// on the wire and bound themselves (coefficient, max_coefficient), the node's own accounts
// (owner_address, proxy_contract) and operator tuning (timeouts, capacity, limits, log level).
type measured struct {
	Role           string          `json:"role"`
	Simulated      bool            `json:"simulated"`
	AllowSimulated bool            `json:"allow_simulated"`
	CertValidity   time.Duration   `json:"cert_validity"`
	Chain          string          `json:"chain"`
	Network        string          `json:"network,omitempty"`
	Registry       string          `json:"registry,omitempty"`
	Proxy          *measuredProxy  `json:"proxy,omitempty"`
	Worker         *measuredWorker `json:"worker,omitempty"`
	Client         *measuredClient `json:"client,omitempty"`
}

type measuredProxy struct {
	MaxAttempts int `json:"max_attempts"`
}

type measuredWorker struct {
	Model  string `json:"model"`
	Engine string `json:"engine"`
}

type measuredClient struct {
	AllowedOrigins []string `json:"allowed_origins"`
	AllowedHosts   []string `json:"allowed_hosts"`
}

// measure picks the measured fields of role out of c.
func (c *Config) measure(role string) measured {
	m := measured{
		Role: role, Simulated: c.Attestation.Simulated, AllowSimulated: c.Attestation.AllowSimulated,
		CertValidity: time.Duration(c.Attestation.CertValidity), Chain: c.Payments.Chain,
		Registry: c.Payments.Registry.String(),
	}
	switch m.Chain {
	case "ton":
		// Only TON chains have networks; a stale setting beside another chain decides nothing.
		m.Network = c.Payments.Network
	case "toncenter":
		m.Network = c.Payments.Network
		if m.Network == "" {
			m.Network = "mainnet"
		}
	}
	switch role {
	case "proxy":
		m.Proxy = &measuredProxy{MaxAttempts: c.Proxy.MaxAttempts}
	case "worker":
		m.Worker = &measuredWorker{Model: c.Worker.Model, Engine: engineLocation(c.Worker.EngineURL)}
	case "client":
		m.Client = &measuredClient{AllowedOrigins: set(c.Client.AllowedOrigins), AllowedHosts: set(c.Client.AllowedHosts)}
	}
	return m
}

// set is a list whose order and repeats mean nothing, in one spelling: sorted, nil when empty.
func set(list []string) []string {
	if len(list) == 0 {
		return nil
	}
	return slices.Compact(slices.Sorted(slices.Values(list)))
}

// engineLocation is where a worker's prompts go, which is what its engine URL decides for trust:
// "builtin" (inside the worker), "loopback" (inside the same machine, so inside the TD when the
// worker runs in one; the port is the operator's choice) or, for any other host, its scheme and
// host:port, because prompts then leave the machine for that place.
func engineLocation(raw string) string {
	if raw == "" {
		return "builtin"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "remote " + raw
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); strings.EqualFold(host, "localhost") || (ip != nil && ip.IsLoopback()) {
		return "loopback"
	}
	return "remote " + strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)
}

// Digest is SHA-256 of the role's measured configuration: what the node's claims name as its
// config digest and a simulated TD measures into RTMR3, so it is part of the simulated image
// hash. It covers only what decides whom the node trusts, who sees a prompt and where money
// settles, so that one binary with one such configuration has one image hash on every machine,
// port and run, and an allow-list of image hashes can be kept:
//
//   - every role: attestation.simulated, attestation.allow_simulated, attestation.cert_validity,
//     payments.chain, payments.network when the chain is ton or toncenter, and payments.registry
//     (whose lists decide whom the node trusts; for a proxy also the prices and the coefficient
//     cap);
//   - proxy: proxy.max_attempts (how many workers may see one prompt);
//   - worker: worker.model, and where worker.engine_url sends prompts: built in, loopback (port
//     left out) or the remote scheme://host:port;
//   - client: client.allowed_origins and client.allowed_hosts (which web pages may use its API).
//
// Nothing else is measured: not addresses, ports, proxies lists, collateral or chain endpoints,
// paths of state, keys or tokens, nor operator tuning (timeouts, max_active, body and connection
// limits, token delay, log level). The price coefficients travel in every hello and request and
// are bounded by the peers, and owner_address and proxy_contract are the node's own accounts.
// The policy file is not measured either: it lists peers' image hashes, so measuring it would
// change a proxy's hash whenever a worker image is added and make proxies and workers that pin
// each other impossible. README.md ("What the image hash measures") has the same list as a table.
func (c *Config) Digest(role string) [32]byte {
	b, _ := json.Marshal(c.measure(role))
	return sha256.Sum256(b)
}
