package attest

import (
	"errors"
	"os"
	"testing"

	"github.com/google/go-tdx-guest/client"
	tdxtesting "github.com/google/go-tdx-guest/testing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The recorded quote, answered by go-tdx-guest's mock configfs provider and mock device for the
// report data of its test cases.
func mockCases() []tdxtesting.TestCase {
	tcs := tdxtesting.TestCases()
	for i := range tcs {
		tcs[i].Quote = recordedQuote()
	}
	return tcs
}

type unsupportedTSM struct{}

func (unsupportedTSM) IsSupported() error                    { return errors.New("no /sys/kernel/config/tsm/report") }
func (unsupportedTSM) GetRawQuote([64]byte) ([]uint8, error) { return nil, errors.New("unsupported") }

func TestTDXQuoterInterfaces(t *testing.T) {
	tcs := mockCases()
	provider, err := tdxtesting.TcQuoteProvider(tcs)
	require.NoError(t, err)
	device, err := tdxtesting.TcDevice(tcs)
	require.NoError(t, err)
	noDevice := func() (client.Device, error) {
		return nil, errors.New("open /dev/tdx_guest: no such file or directory")
	}
	withDevice := func() (client.Device, error) { return device, device.Open("") }

	testCases := map[string]struct {
		provider  client.QuoteProvider
		open      func() (client.Device, error)
		wantIface string
		wantErr   error
		wantMsg   []string
	}{
		"configfs-tsm first":          {provider: provider, open: withDevice, wantIface: InterfaceConfigFS},
		"device when no configfs-tsm": {provider: unsupportedTSM{}, open: withDevice, wantIface: InterfaceDevice},
		"neither: not in a TDX VM": {provider: unsupportedTSM{}, open: noDevice, wantErr: ErrNoTDX,
			wantMsg: []string{"configfs-tsm: no /sys/kernel/config/tsm/report", "/dev/tdx_guest: open /dev/tdx_guest"}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			q, err := newTDXQuoter(tc.provider, tc.open)
			if tc.wantErr != nil {
				require.ErrorIs(err, tc.wantErr)
				for _, m := range tc.wantMsg {
					assert.ErrorContains(err, m)
				}
				return
			}
			require.NoError(err)
			assert.Equal(tc.wantIface, q.Interface())
			raw, err := q.Quote(tcs[0].Input)
			require.NoError(err)
			assert.Equal(recordedQuote(), raw)
			parsed, err := ParseQuote(raw)
			require.NoError(err)
			assert.Equal(uint32(4), parsed.Version)
		})
	}
}

func TestTDXQuoterDeviceError(t *testing.T) {
	device, err := tdxtesting.TcDevice(mockCases())
	require.NoError(t, err)
	q, err := newTDXQuoter(unsupportedTSM{}, func() (client.Device, error) { return device, device.Open("") })
	require.NoError(t, err)
	_, err = q.Quote([64]byte{9}) // no recorded answer for this report data
	require.ErrorContains(t, err, "get TDX quote via /dev/tdx_guest")
	require.NoError(t, q.Close())
}

// On TDX hardware (COCOON_TDX_HARDWARE=1) the real interface answers; elsewhere NewTDXQuoter says
// plainly that this is not a TDX VM.
func TestTDXQuoterHardware(t *testing.T) {
	q, err := NewTDXQuoter()
	if os.Getenv("COCOON_TDX_HARDWARE") == "" {
		if err != nil {
			require.ErrorIs(t, err, ErrNoTDX)
			return
		}
		t.Skip("a TDX quote interface is present; set COCOON_TDX_HARDWARE=1 to use it")
	}
	require.NoError(t, err)
	raw, err := q.Quote([64]byte{1, 2, 3})
	require.NoError(t, err)
	parsed, err := ParseQuote(raw)
	require.NoError(t, err)
	require.Equal(t, [64]byte{1, 2, 3}, parsed.ReportData)
}
