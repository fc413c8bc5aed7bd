package bench

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// CPUProfile starts writing this process's CPU profile to path (a role started by a bench run
// with --cpuprofile); stop ends it and closes the file.
func CPUProfile(path string) (stop func(), err error) {
	return record(path, "cpu profile", "--cpuprofile", pprof.StartCPUProfile, pprof.StopCPUProfile)
}

// Trace starts writing this process's execution trace to path (a role started by a bench run
// with --trace); stop ends it and closes the file. A trace shows what a profile cannot: how long
// each goroutine waited to run after it was woken, which is most of a lone request's latency.
func Trace(path string) (stop func(), err error) {
	return record(path, "trace", "--trace", trace.Start, trace.Stop)
}

// record runs start on a new file at path, and returns what ends it and closes the file.
func record(path, what, flag string, start func(io.Writer) error, end func()) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (is the %s directory writable?)", what, err, flag)
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return func() {
		end()
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
