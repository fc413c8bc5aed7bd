package attest

import (
	"testing"

	"github.com/cocoon-network/cocoon/testdata"
)

func seedFiles(f *testing.F, dir string) [][]byte {
	files, err := testdata.Files(dir)
	if err != nil {
		f.Fatal(err)
	}
	return files
}
