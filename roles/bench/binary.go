package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// copyBinary copies the cocoon binary into dir and returns the copy's path; the roles run from it.
// How much of a binary's file the kernel maps on a page fault depends on how the file was written:
// a binary as the Go linker wrote it can start 6 MB larger in RSS than a copy of it (`cocoon --help`,
// 24.1 against 18.2 MB), with the same code. A copy, written the same way for every build, makes
// the RSS figures of two builds comparable.
func copyBinary(bin, dir string) (string, error) {
	src, err := os.Open(bin)
	if err != nil {
		return "", fmt.Errorf("bench: copy the cocoon binary: %w", err)
	}
	defer src.Close()
	path := filepath.Join(dir, "cocoon")
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return "", fmt.Errorf("bench: copy the cocoon binary: %w", err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return "", fmt.Errorf("bench: copy the cocoon binary to %s: %w", path, err)
	}
	if err := dst.Close(); err != nil {
		return "", fmt.Errorf("bench: copy the cocoon binary to %s: %w", path, err)
	}
	return path, nil
}
