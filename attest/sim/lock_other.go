//go:build !unix && !windows

package sim

import "os"

// Platforms without file locks rely on atomic writes alone. Two first starts at once could mix
// their files; Open then reports the directory as inconsistent rather than using it.
func lockFile(*os.File) error   { return nil }
func unlockFile(*os.File) error { return nil }
