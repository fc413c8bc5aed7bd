//go:build unix

package bench

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
)

// gcSignal is what the bench sends a role to make it collect its garbage before a memory sample.
const gcSignal = syscall.SIGUSR1

// GCOnSignal makes this process (a role started by a bench run) collect its garbage and return
// the freed pages to the operating system on every gcSignal, then write how many times it did so
// to path, followed by the runtime's memory classes (memoryClasses): the bench's RSS samples then
// count what the role keeps, not garbage that the next collection would free, and the classes
// say how much of it is goroutine stacks and how much heap. With memProfile set (--memprofile), each collection is followed by the
// heap and goroutine profiles, memProfile-<n>.heap.pprof and memProfile-<n>.goroutine.pprof, so
// that two samples can be compared (pprof -diff_base). stop ends it.
func GCOnSignal(path, memProfile string) (stop func(), err error) {
	if memProfile != "" {
		// Fine sampling: per-stream figures are a few KiB, far below the default 512 KiB.
		runtime.MemProfileRate = 4 << 10
	}
	if err := writeGCReport(path, 0); err != nil {
		return nil, fmt.Errorf("gc signal: %w (is the bench's directory writable?)", err)
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, gcSignal)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 1; ; n++ {
			if _, ok := <-ch; !ok {
				return
			}
			debug.FreeOSMemory()
			if memProfile != "" {
				writeProfiles(fmt.Sprintf("%s-%d", memProfile, n))
			}
			_ = writeGCReport(path, n)
		}
	}()
	return func() {
		signal.Stop(ch)
		close(ch)
		<-done
	}, nil
}

// writeGCReport writes the count n and the memory classes to path, whole: the bench reads it
// while it may be written, so it is written beside and renamed into place.
func writeGCReport(path string, n int) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(n)+"\n"+memoryClasses()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
