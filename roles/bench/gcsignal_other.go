//go:build !unix

package bench

import (
	"errors"
	"syscall"
)

// gcSignal: there is none on this system; collectGarbage reports that.
const gcSignal = syscall.Signal(0)

// GCOnSignal needs a Unix signal; the bench's memory figures are Linux only.
func GCOnSignal(string, string) (func(), error) {
	return nil, errors.New("gc signal: not supported on this system (the bench's memory figures need Linux)")
}
