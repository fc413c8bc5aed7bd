// Package testdata exposes the recorded quotes, claims, certificates and frames under this folder
// to tests and fuzz corpora. Regenerate them with `COCOON_UPDATE_TESTDATA=1 go test ./transport/ -run TestUpdateTestdata`.
package testdata

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
)

//go:embed quotes claims certs frames
var files embed.FS

// Files returns the contents of every file in dir (quotes, claims, certs or frames).
func Files(dir string) ([][]byte, error) {
	entries, err := fs.ReadDir(files, dir)
	if err != nil {
		return nil, fmt.Errorf("testdata %s: %w", dir, err)
	}
	var out [][]byte
	for _, e := range entries {
		b, err := files.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}
