package bench

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// CPUProfile starts writing this process's CPU profile to path (a role started by a bench run
// with --cpuprofile); stop ends it and closes the file.
func CPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w (is the --cpuprofile directory writable?)", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile %s: %w", path, err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// writeProfiles writes the heap and goroutine profiles to prefix.heap.pprof and
// prefix.goroutine.pprof; a profile that cannot be written is skipped, as a bench aid must not
// stop the role.
func writeProfiles(prefix string) {
	for _, name := range []string{"heap", "goroutine"} {
		f, err := os.Create(prefix + "." + name + ".pprof")
		if err != nil {
			continue
		}
		_ = pprof.Lookup(name).WriteTo(f, 0)
		_ = f.Close()
	}
}
