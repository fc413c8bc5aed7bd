package proxy

import (
	"context"
	"fmt"

	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/transport"
	"github.com/cocoon-network/cocoon/transport/seal"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// serveWorker handles a worker's control stream: registration, withdrawal, disconnection. The
// model a worker registers must be the one its attested claims name.
func (p *Proxy) serveWorker(ctx context.Context, c *transport.Conn) {
	peer := c.Peer()
	log := p.log.With().Str("worker", c.RemoteAddr().String()).Str("image", peer.ImageHash.String()).Logger()
	var entry *workerEntry
	defer func() {
		if entry != nil {
			p.reg.remove(entry)
			log.Info().Str("model", entry.model).Msg("worker left")
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.Done():
			return
		case m, ok := <-c.Control():
			if !ok {
				return
			}
			switch m := m.(type) {
			case *wire.Register:
				if m.GetModel() != peer.Claims.Model || m.GetWeightsDigest() != peer.Claims.WeightsDigest {
					msg := fmt.Sprintf("registration for model %q (%s) does not match the attested claims (%q, %s)",
						m.GetModel(), m.GetWeightsDigest(), peer.Claims.Model, peer.Claims.WeightsDigest)
					log.Warn().Msg(msg)
					// The reason travels in the connection close, which the worker logs.
					_ = c.Close(wire.CodeBadRequest, msg)
					return
				}
				if m.GetMaxActive() == 0 {
					_ = c.Close(wire.CodeBadRequest, "max_active must be positive")
					return
				}
				var owner ton.AccountID
				if p.cfg.Payments != nil {
					var err error
					if owner, err = ton.ParseAccountID(m.GetOwnerAddress()); err != nil {
						_ = c.Close(wire.CodeBadRequest, fmt.Sprintf("owner_address %q is not a TON address: earnings need one", m.GetOwnerAddress()))
						return
					}
				}
				if msg := p.overCap(m.GetCoefficient()); msg != "" {
					log.Warn().Uint32("coefficient", m.GetCoefficient()).Msg(msg)
					_ = c.Close(wire.CodeBadRequest, msg)
					return
				}
				if entry != nil {
					p.reg.remove(entry)
				}
				entry = &workerEntry{
					id:   fmt.Sprintf("w%d", p.reg.seq.Add(1)),
					conn: c, model: m.GetModel(), digest: m.GetWeightsDigest(), coefficient: m.GetCoefficient(),
					maxActive: int64(m.GetMaxActive()), owner: owner, ownerText: m.GetOwnerAddress(),
					image: peer.ImageHash.String(), attestation: peer.Label(),
				}
				if hk := peer.Claims.HPKEKey; len(hk) > 0 {
					entry.hpkeID = seal.KeyIDOf(hk)
				}
				if entry.coefficient == 0 {
					entry.coefficient = 1000
				}
				p.reg.add(entry)
				entry.updatePing()
				log.Info().Str("worker_id", entry.id).Str("model", entry.model).Int64("max_active", entry.maxActive).
					Uint32("coefficient", entry.coefficient).Str("attestation", entry.attestation).Msg("worker registered")
				if err := c.SendControl(&wire.Registered{WorkerId: entry.id}); err != nil {
					return
				}
			case *wire.PaymentState:
				if len(m.GetSigned()) == 0 {
					if entry != nil {
						p.sendCurrent(c, entry.owner, settle.KindWorkerEarned, log)
					}
					continue
				}
				if err := p.checkState(m); err != nil {
					log.Warn().Err(err).Msg("worker's payment state refused")
				}
			case *wire.Unregister:
				if entry != nil {
					p.reg.remove(entry)
					log.Info().Str("worker_id", entry.id).Str("reason", m.GetReason()).Msg("worker withdrew")
					entry = nil
				}
			}
		}
	}
}

// overCap says why a worker's coefficient is refused, or "" when the registry's cap allows it.
func (p *Proxy) overCap(coefficient uint32) string {
	pm := p.cfg.Payments
	if pm == nil || pm.CoefficientCap == nil {
		return ""
	}
	limit := pm.CoefficientCap()
	if coefficient == 0 {
		coefficient = settle.CoefficientOne
	}
	if limit == 0 || coefficient <= limit {
		return ""
	}
	return fmt.Sprintf("coefficient %d (%.3gx) exceeds the registry's cap of %d (%.3gx): set worker.coefficient to %d or less",
		coefficient, float64(coefficient)/settle.CoefficientOne, limit, float64(limit)/settle.CoefficientOne, limit)
}
