package attest

import (
	"errors"
	"fmt"
	"sync"

	"github.com/google/go-tdx-guest/client"
)

// A Quoter produces TDX quotes over 64 bytes of report data.
type Quoter interface {
	Quote(reportData [64]byte) ([]byte, error)
}

// ErrNoTDX is returned when no TDX quote interface is present on this machine.
var ErrNoTDX = errors.New("no TDX guest quote interface (configfs-tsm or /dev/tdx_guest): not running in a TDX VM")

// Names of the quote interfaces, as TDXQuoter.Interface reports them.
const (
	InterfaceConfigFS = "configfs-tsm"
	InterfaceDevice   = "/dev/tdx_guest"
)

// TDXQuoter gets quotes from the TDX guest: through configfs-tsm (/sys/kernel/config/tsm/report,
// Linux 6.7 and later) when the kernel offers it, else through the /dev/tdx_guest ioctl of older
// kernels. It is safe for concurrent use.
type TDXQuoter struct {
	iface    string
	provider client.QuoteProvider // configfs-tsm

	mu     sync.Mutex // one ioctl request buffer at a time
	device client.Device
}

// NewTDXQuoter opens the TDX guest's quote interface, configfs-tsm first. Outside a TDX VM it
// returns ErrNoTDX, saying why each interface is unavailable.
func NewTDXQuoter() (*TDXQuoter, error) {
	qp, err := client.GetQuoteProvider()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoTDX, err)
	}
	return newTDXQuoter(qp, func() (client.Device, error) { return client.OpenDevice() })
}

// newTDXQuoter picks the interface; tests pass go-tdx-guest's mocks.
func newTDXQuoter(qp client.QuoteProvider, openDevice func() (client.Device, error)) (*TDXQuoter, error) {
	cerr := qp.IsSupported()
	if cerr == nil {
		return &TDXQuoter{iface: InterfaceConfigFS, provider: qp}, nil
	}
	dev, derr := openDevice()
	if derr != nil {
		return nil, fmt.Errorf("%w: configfs-tsm: %v; %s: %v", ErrNoTDX, cerr, InterfaceDevice, derr)
	}
	return &TDXQuoter{iface: InterfaceDevice, device: dev}, nil
}

// Interface names the quote interface in use: InterfaceConfigFS or InterfaceDevice.
func (q *TDXQuoter) Interface() string { return q.iface }

// Quote asks the TDX module, through the quoting enclave, for a quote over reportData.
func (q *TDXQuoter) Quote(reportData [64]byte) ([]byte, error) {
	var raw []byte
	var err error
	if q.provider != nil {
		raw, err = q.provider.GetRawQuote(reportData)
	} else {
		q.mu.Lock()
		raw, err = client.GetRawQuote(q.device, reportData)
		if err == nil {
			raw = append([]byte(nil), raw...) // the device answers in its request buffer
		}
		q.mu.Unlock()
	}
	if err != nil {
		return nil, fmt.Errorf("get TDX quote via %s: %w", q.iface, err)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("get TDX quote via %s: empty quote", q.iface)
	}
	return raw, nil
}

// Close releases the device, if one is open.
func (q *TDXQuoter) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.device == nil {
		return nil
	}
	err := q.device.Close()
	q.device = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", InterfaceDevice, err)
	}
	return nil
}
