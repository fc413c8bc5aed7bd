package attest

import (
	"errors"
	"fmt"

	"github.com/google/go-tdx-guest/client"
)

// A Quoter produces TDX quotes over 64 bytes of report data.
type Quoter interface {
	Quote(reportData [64]byte) ([]byte, error)
}

// ErrNoTDX is returned when no TDX quote interface is present on this machine.
var ErrNoTDX = errors.New("no TDX guest quote interface (configfs-tsm or /dev/tdx_guest): not running in a TDX VM")

// TDXQuoter gets quotes from the TDX guest: configfs-tsm when the kernel offers it, else /dev/tdx_guest.
type TDXQuoter struct {
	provider client.QuoteProvider
}

// NewTDXQuoter opens the TDX guest's quote interface. Outside a TDX VM it returns ErrNoTDX.
func NewTDXQuoter() (*TDXQuoter, error) {
	qp, err := client.GetQuoteProvider()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoTDX, err)
	}
	if err := qp.IsSupported(); err != nil {
		dev, derr := client.OpenDevice()
		if derr != nil {
			return nil, fmt.Errorf("%w: configfs-tsm: %v; device: %v", ErrNoTDX, err, derr)
		}
		_ = dev.Close()
	}
	return &TDXQuoter{provider: qp}, nil
}

// Quote asks the TDX module (through the quoting enclave) for a quote.
func (q *TDXQuoter) Quote(reportData [64]byte) ([]byte, error) {
	raw, err := client.GetRawQuote(q.provider, reportData)
	if err != nil {
		return nil, fmt.Errorf("get TDX quote: %w", err)
	}
	return raw, nil
}
