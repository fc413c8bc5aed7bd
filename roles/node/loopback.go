package node

import "github.com/cocoon-network/cocoon/config"

// LoopbackConfig is every role on this machine with simulated TDX, each listening on a free
// loopback port (the client too, until the caller says otherwise).
func LoopbackConfig(data, logLevel string) config.Config {
	cfg := config.Defaults()
	cfg.LogLevel, cfg.Data = logLevel, data
	cfg.Attestation.Simulated, cfg.Attestation.AllowSimulated = true, true
	cfg.Proxy.Listen, cfg.Proxy.StatsListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Worker.StatsListen, cfg.Client.Listen = "127.0.0.1:0", "127.0.0.1:0"
	return cfg
}
