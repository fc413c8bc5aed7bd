package config

import (
	"os"
	"path/filepath"
)

// StateDir is where cocoon keeps machine-local state unless told otherwise:
// $COCOON_STATE_DIR, else $XDG_STATE_HOME/cocoon, else ~/.local/state/cocoon.
func StateDir() string {
	if d := os.Getenv("COCOON_STATE_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "cocoon")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "cocoon")
	}
	return filepath.Join(os.TempDir(), "cocoon")
}

// SimDir is the development root of trust's directory: $COCOON_SIM_DIR, else StateDir()/tdx-sim.
// Every process on a machine shares it, so simulated nodes verify each other.
func SimDir() string {
	if d := os.Getenv("COCOON_SIM_DIR"); d != "" {
		return d
	}
	return filepath.Join(StateDir(), "tdx-sim")
}
