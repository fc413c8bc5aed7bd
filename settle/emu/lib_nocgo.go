//go:build !cgo || !(linux || darwin)

package emu

// Without cgo there is no way to call libemulator: every chain creation and get-method fails
// with errNoCgo, and the rest of the package (messages, traces, addresses) works as with it.

func openLibrary(string) error { return errNoCgo }

type txEmulator struct{}

func newTxEmulator(string) (*txEmulator, error) { return nil, errNoCgo }

func (*txEmulator) setClock(uint64, uint32) error { return errNoCgo }

func (*txEmulator) emulate(string, string) string { return "" }

func runGetMethod(string, string, string, uint32, uint64, string, int, string) (string, error) {
	return "", errNoCgo
}
