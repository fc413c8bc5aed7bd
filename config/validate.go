package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/rs/zerolog"
)

// Validate checks the sections a role uses; errors name the field.
func (c *Config) Validate(role string) error {
	if _, err := zerolog.ParseLevel(c.LogLevel); err != nil || c.LogLevel == "" {
		return fmt.Errorf("log_level: %q is not one of trace, debug, info, warn, error", c.LogLevel)
	}
	if c.Data == "" {
		return fmt.Errorf("data: required")
	}
	if v := time.Duration(c.Attestation.CertValidity); v <= 0 || v > 24*time.Hour {
		return fmt.Errorf("attestation.cert_validity: %s must be positive and at most 24h", v)
	}
	if u := c.Attestation.CollateralURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return fmt.Errorf("attestation.collateral_url: %q is not an http(s) URL", u)
		}
	}
	if err := c.Payments.validate(role); err != nil {
		return err
	}
	switch role {
	case "proxy":
		if err := hostPort("proxy.listen", c.Proxy.Listen, false); err != nil {
			return err
		}
		if err := hostPort("proxy.stats_listen", c.Proxy.StatsListen, true); err != nil {
			return err
		}
		if c.Proxy.RequestTimeout <= 0 {
			return fmt.Errorf("proxy.request_timeout: must be positive")
		}
		if c.Proxy.MaxAttempts < 1 || c.Proxy.MaxAttempts > 10 {
			return fmt.Errorf("proxy.max_attempts: %d must be between 1 and 10", c.Proxy.MaxAttempts)
		}
		if t := c.Proxy.StatsToken; t != "" && (len(t) < 16 || strings.ContainsFunc(t, unicode.IsSpace)) {
			return fmt.Errorf("proxy.stats_token: must be at least 16 characters without spaces (e.g. openssl rand -hex 16), or empty for loopback only")
		}
	case "worker":
		if err := proxies("worker.proxies", c.Worker.Proxies, c.Payments.Registry.Set); err != nil {
			return err
		}
		if c.Worker.EngineURL != "" {
			u, err := url.Parse(c.Worker.EngineURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("worker.engine_url: %q is not an http(s) URL", c.Worker.EngineURL)
			}
		}
		if c.Worker.Model == "" {
			return fmt.Errorf("worker.model: required")
		}
		if c.Worker.Coefficient == 0 || c.Worker.Coefficient > 1_000_000 {
			return fmt.Errorf("worker.coefficient: %d must be between 1 and 1000000 (1000 = 1.0x)", c.Worker.Coefficient)
		}
		if c.Worker.MaxActive < 1 {
			return fmt.Errorf("worker.max_active: %d must be at least 1", c.Worker.MaxActive)
		}
		if c.Worker.ModelDir != "" && c.Worker.WeightsDigest != "" {
			return fmt.Errorf("worker.weights_digest: give either model_dir or weights_digest, not both")
		}
		if err := hostPort("worker.stats_listen", c.Worker.StatsListen, true); err != nil {
			return err
		}
	case "client":
		if err := proxies("client.proxies", c.Client.Proxies, c.Payments.Registry.Set); err != nil {
			return err
		}
		if err := hostPort("client.listen", c.Client.Listen, false); err != nil {
			return err
		}
		if c.Client.MaxBodyBytes < 1024 {
			return fmt.Errorf("client.max_body_bytes: %d is below 1024", c.Client.MaxBodyBytes)
		}
		if c.Client.RequestTimeout <= 0 {
			return fmt.Errorf("client.request_timeout: must be positive")
		}
		if c.Client.MaxBodiesBytes < c.Client.MaxBodyBytes {
			return fmt.Errorf("client.max_bodies_bytes: %d is below client.max_body_bytes (%d): one body would never fit",
				c.Client.MaxBodiesBytes, c.Client.MaxBodyBytes)
		}
		if c.Client.MaxConnections < 1 {
			return fmt.Errorf("client.max_connections: %d must be at least 1", c.Client.MaxConnections)
		}
		if c.Client.MaxProxies < 0 {
			return fmt.Errorf("client.max_proxies: %d is negative (0: all proxies)", c.Client.MaxProxies)
		}
		if b, a := c.Payments.TopUpBelow, c.Payments.TopUpAmount; (b == 0) != (a == 0) {
			return fmt.Errorf("payments.top_up_below and payments.top_up_amount: give both (nanoTON) to top up automatically, or neither")
		}
		if c.Payments.TopUpBelow > 0 && c.Payments.Chain == "" {
			return fmt.Errorf("payments.top_up_below: needs payments.chain (top-ups are paid from the client's wallet)")
		}
		for i, o := range c.Client.AllowedOrigins {
			if o == "*" {
				continue
			}
			if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
				(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
				return fmt.Errorf("client.allowed_origins[%d]: %q is not an origin like https://app.example.com, or *", i, o)
			}
		}
		for i, h := range c.Client.AllowedHosts {
			if _, _, err := net.SplitHostPort(h); err == nil || h == "" || strings.ContainsAny(h, "/@ ") {
				return fmt.Errorf("client.allowed_hosts[%d]: %q is not a host name without a port, or *", i, h)
			}
		}
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	return nil
}

func hostPort(field, v string, optional bool) error {
	if v == "" && optional {
		return nil
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("%s: %q is not host:port", field, v)
	}
	return nil
}

// proxies checks a list of proxy addresses; with a registry it may be empty (the registry lists
// the proxies).
func proxies(field string, list []string, registry bool) error {
	if len(list) == 0 && !registry {
		return fmt.Errorf("%s: at least one proxy address is required (or payments.registry, to find them there)", field)
	}
	for i, p := range list {
		if err := hostPort(fmt.Sprintf("%s[%d]", field, i), p, false); err != nil {
			return err
		}
	}
	return nil
}

// chainURL checks payments.chain_url; the URL is not repeated in errors, since a key may hide in it.
func chainURL(v string) error {
	if v == "" {
		return fmt.Errorf("payments.chain_url: required with chain toncenter (e.g. http://127.0.0.1:8081 for `cocoon chain serve`)")
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("payments.chain_url: not an http(s) URL (e.g. http://127.0.0.1:8081 for `cocoon chain serve`)")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("payments.chain_url: no user info, query or fragment; put the API key in payments.chain_api_key")
	}
	return nil
}

func (p *Payments) validate(role string) error {
	switch p.Chain {
	case "":
		if p.Registry.Set {
			return fmt.Errorf("payments.registry: needs payments.chain to read it (local, toncenter or ton)")
		}
		return nil
	}
	if v := time.Duration(p.RegistryInterval); v != 0 && (v < 100*time.Millisecond || v > 10*time.Minute) {
		return fmt.Errorf("payments.registry_interval: %s must be between 100ms and 10m", v)
	}
	switch p.Chain {
	case "local":
	case "ton":
		if p.TONConfig == "" {
			return fmt.Errorf("payments.ton_config: required with chain ton")
		}
		if p.Network != "mainnet" && p.Network != "testnet" {
			return fmt.Errorf("payments.network: %q must be mainnet or testnet", p.Network)
		}
	case "toncenter":
		if err := chainURL(p.ChainURL); err != nil {
			return err
		}
		if p.Network != "" && p.Network != "mainnet" && p.Network != "testnet" {
			return fmt.Errorf("payments.network: %q must be mainnet or testnet (or empty: mainnet, as `cocoon chain serve`)", p.Network)
		}
	default:
		return fmt.Errorf("payments.chain: %q must be empty, ton, local or toncenter", p.Chain)
	}
	if role == "proxy" {
		if !p.Registry.Set {
			return fmt.Errorf("payments.registry: required with payments (the registry contract's address)")
		}
		if !p.ProxyContract.Set {
			return fmt.Errorf("payments.proxy_contract: required with payments (this proxy's contract address)")
		}
	}
	return nil
}
