package node

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/builtin"
)

// Engine returns the configured engine and the weights digest the worker announces.
func Engine(cfg config.Config, log zerolog.Logger) (gpu.Engine, string, error) {
	wc := cfg.Worker
	digest := wc.WeightsDigest
	if wc.ModelDir != "" {
		log.Info().Str("dir", wc.ModelDir).Msg("computing weights digest")
		var last time.Time
		d, err := gpu.WeightsDigest(wc.ModelDir, func(done, total int64) {
			if time.Since(last) > 2*time.Second || done == total {
				last = time.Now()
				log.Info().Int64("done_mib", done>>20).Int64("total_mib", total>>20).Msg("weights digest")
			}
		})
		if err != nil {
			return nil, "", fmt.Errorf("worker.model_dir: %w", err)
		}
		digest = d
	}
	if wc.EngineURL == "" {
		if digest == "" {
			// The built-in engine has no weights; its digest names the engine and model.
			sum := sha256.Sum256([]byte("cocoon built-in engine/" + wc.Model))
			digest = "sha256:" + hex.EncodeToString(sum[:])
		}
		log.Info().Str("model", wc.Model).Msg("using the built-in engine")
		return builtin.New(builtin.Config{Model: wc.Model, TokenDelay: time.Duration(wc.TokenDelay)}), digest, nil
	}
	if digest == "" {
		return nil, "", fmt.Errorf("worker.weights_digest: required with engine_url (or set worker.model_dir)")
	}
	e, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: wc.EngineURL, APIKey: wc.EngineAPIKey, MaxConns: wc.MaxActive})
	if err != nil {
		return nil, "", fmt.Errorf("worker.engine_url: %w", err)
	}
	return e, digest, nil
}
