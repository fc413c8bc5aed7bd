package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"
	tonconfig "github.com/tonkeeper/tongo/config"
	"github.com/tonkeeper/tongo/liteapi"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/roles/node"
	"github.com/cocoon-network/cocoon/settle/chain/chains"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// DefaultTimeout bounds each check that waits on the network.
const DefaultTimeout = 10 * time.Second

// defaults fills in the zero fields of d.deps with the real dependencies.
func (d *Doctor) defaults() {
	p := &d.deps
	if p.TDX == nil {
		p.TDX = func() (attest.Quoter, error) { return attest.NewTDXQuoter() }
	}
	if p.HTTP == nil {
		p.HTTP = &http.Client{}
	}
	if p.OpenChain == nil {
		p.OpenChain = chains.Open
	}
	if p.ChainTime == nil {
		p.ChainTime = func(ctx context.Context, w chains.Where) (time.Time, error) { return chainTime(ctx, p.HTTP, w) }
	}
	if p.Dial == nil {
		p.Dial = d.dial
	}
	if p.ImageHash == nil {
		p.ImageHash = node.ImageHash
	}
	if p.FreeBytes == nil {
		p.FreeBytes = freeBytes
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Timeout <= 0 {
		p.Timeout = DefaultTimeout
	}
}

// dial makes the handshake the node makes: its own transport (identity, quote, policy) to a
// proxy, closed as soon as both ends are verified.
func (d *Doctor) dial(ctx context.Context, endpoint string) (*attest.Peer, error) {
	var claims attest.Claims
	if d.role == attest.RoleWorker {
		digest, _, err := d.weightsDigest()
		if err != nil {
			return nil, err
		}
		claims = attest.Claims{Model: d.cfg.Worker.Model, WeightsDigest: digest}
	}
	cfg := d.cfg
	tc, err := node.Transport(&cfg, d.role, claims, d.version, zerolog.Nop())
	if err != nil {
		return nil, err
	}
	tc.PingInterval = -1
	if dl, ok := ctx.Deadline(); ok {
		tc.HandshakeTimeout = time.Until(dl)
	}
	c, err := transport.Dial(ctx, endpoint, tc)
	if err != nil {
		return nil, err
	}
	peer := c.Peer()
	_ = c.Close(wire.CodeOK, "")
	<-c.Done()
	return peer, nil
}

var (
	errUnauthorized = errors.New("unauthorized")
	errNoList       = errors.New("no model list")
)

// maxModelsBody bounds the engine's model list read.
const maxModelsBody = 1 << 20

// listModels asks an OpenAI-compatible engine which models it serves (GET /v1/models).
func listModels(ctx context.Context, hc *http.Client, base, apiKey string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/v1/models", nil)
	if err != nil {
		return nil, err
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxModelsBody))
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("%w: GET /v1/models: status %d", errUnauthorized, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: GET /v1/models: status %d", errNoList, resp.StatusCode)
	}
	return parseModels(body)
}

// parseModels reads the model ids of an OpenAI model list ({"data":[{"id":…}]}).
func parseModels(body []byte) ([]string, error) {
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("%w: GET /v1/models: %v", errNoList, err)
	}
	var out []string
	for _, m := range list.Data {
		if m.ID != "" {
			out = append(out, m.ID)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: GET /v1/models: an empty list", errNoList)
	}
	return out, nil
}

// chainTime is the chain's time: the last masterchain block's through lite servers, a chain
// service's clock (its Date header) through a URL.
func chainTime(ctx context.Context, hc *http.Client, w chains.Where) (time.Time, error) {
	if w.URL != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(w.URL, "/")+"/api/v2/getMasterchainInfo", nil)
		if err != nil {
			return time.Time{}, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return time.Time{}, err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		_ = resp.Body.Close()
		t, err := http.ParseTime(resp.Header.Get("Date"))
		if err != nil {
			return time.Time{}, fmt.Errorf("%s sent no Date header", w.URL)
		}
		return t, nil
	}
	cfg, err := tonconfig.ParseConfigFile(w.ConfigPath)
	if err != nil {
		return time.Time{}, fmt.Errorf("read %s: %w", w.ConfigPath, err)
	}
	c, err := liteapi.NewClient(liteapi.WithConfigurationFile(*cfg), liteapi.WithInitializationContext(ctx))
	if err != nil {
		return time.Time{}, err
	}
	info, err := c.GetMasterchainInfoExt(ctx, 0)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(int64(info.LastUtime), 0), nil
}
