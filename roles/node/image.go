package node

import (
	"errors"
	"fmt"
	"io"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/config"
)

// ImageHash is the image hash a proxy or worker built from cfg presents in its quotes, known
// before it starts: operators put it in policies and the registry.
//
// With simulated TDX it is computed as Transport measures a simulated TD: from this binary, the
// role and cfg.Digest(role), so it is the same on every machine, port and run. In a real TD it is
// the TD's own MRTD and RTMRs, set by the firmware and the boot chain, which nothing but the TD
// can report: ImageHash asks the TDX guest for a quote and reads them from it. Outside a TD that
// fails with attest.ErrNoTDX and says where to get the hash instead.
func ImageHash(cfg config.Config, role attest.Role) (hash attest.ImageHash, simulated bool, err error) {
	return imageHash(cfg, role, func() (attest.Quoter, error) { return attest.NewTDXQuoter() })
}

// imageHash is ImageHash with the TDX guest passed in; tests pass stubs.
func imageHash(cfg config.Config, role attest.Role, tdx func() (attest.Quoter, error)) (attest.ImageHash, bool, error) {
	if role != attest.RoleProxy && role != attest.RoleWorker {
		return attest.ImageHash{}, false, fmt.Errorf("%s image hash: only proxies and workers run in a TD; a %s presents no quote", role, role)
	}
	if cfg.Attestation.Simulated {
		m, err := SimulatedMeasurements(cfg, role)
		if err != nil {
			return attest.ImageHash{}, true, fmt.Errorf("%s image hash: %w", role, err)
		}
		return m.ImageHash(), true, nil
	}
	q, err := tdx()
	if err != nil {
		if errors.Is(err, attest.ErrNoTDX) {
			return attest.ImageHash{}, false, fmt.Errorf("%s image hash: %w; a real TD's image hash is its MRTD and RTMRs, "+
				"which only the TD can report: run `cocoon %s --print-image` inside the TD, or read \"image hash\" from "+
				"`cocoon attest inspect` of one of its certificates or quotes (or pass --sim for the simulated image)", role, err, role)
		}
		return attest.ImageHash{}, false, fmt.Errorf("%s image hash: %w", role, err)
	}
	// The report data binds nothing: this quote only reads the TD's registers and is not kept.
	raw, err := q.Quote([64]byte{})
	if err != nil {
		return attest.ImageHash{}, false, fmt.Errorf("%s image hash: %w", role, err)
	}
	quote, err := attest.ParseQuote(raw)
	if err != nil {
		return attest.ImageHash{}, false, fmt.Errorf("%s image hash: the TDX guest's quote: %w", role, err)
	}
	return quote.Measurements.ImageHash(), false, nil
}

// PrintImage writes the image hash of `cocoon proxy --print-image` or `worker --print-image` as
// one line: the hex hash, labelled when it rests on the development root of trust.
func PrintImage(w io.Writer, cfg config.Config, role string) error {
	r, err := attest.ParseRole(role)
	if err != nil {
		return err
	}
	hash, simulated, err := ImageHash(cfg, r)
	if err != nil {
		return err
	}
	if simulated {
		_, err = fmt.Fprintf(w, "%s (SIMULATED: development root of trust)\n", hash)
	} else {
		_, err = fmt.Fprintln(w, hash)
	}
	return err
}

// SimulatedMeasurements are the measurements a simulated TD of this binary running cfg as role
// presents: one formula for the node's quotes, --print-image and the demo's registry.
func SimulatedMeasurements(cfg config.Config, role attest.Role) (attest.Measurements, error) {
	digest, err := attest.ExecutableDigest()
	if err != nil {
		return attest.Measurements{}, err
	}
	return attest.SimulatedMeasurements(digest, role, cfg.Digest(string(role))), nil
}
