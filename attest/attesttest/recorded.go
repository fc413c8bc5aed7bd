package attesttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RecordedTD is what go-tdx-guest recorded from one TD (Container-Optimized OS 113 on Google
// Cloud, TDX module 1.0): its quote, a v4 quote of 8000 bytes with zero padding, and its CC event
// log (the CCEL ACPI table's data area). Those files ship in the module's source but are not
// embedded by it, so they are read from the module cache.
func RecordedTD(t testing.TB) (quote, eventLog []byte) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/google/go-tdx-guest").Output()
	if err != nil {
		t.Fatalf("locate go-tdx-guest's module directory: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "testing", "testdata", "ccel")
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("recorded TD: %v", err)
		}
		return b
	}
	return read("cos-113-tdx-quote.dat"), read("ccel_data.dat")
}
