// Package poll waits for a condition by asking for it again and again, for code that watches
// another process or role it cannot be notified by (the demo and the benchmark). Tests and
// set-up code use it instead of sleeping for a fixed time.
package poll

import (
	"context"
	"fmt"
	"time"
)

// Every is how often Until asks again.
const Every = 20 * time.Millisecond

// Until calls f every 20 ms until it returns nil, ctx ends, timeout passes or something arrives
// on stop (a process or role that stopped; nil: nothing to watch). The error names the last
// answer of f, so a caller that gives up says what it was waiting for.
func Until(ctx context.Context, timeout time.Duration, stop <-chan error, f func() error) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(Every)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case serr := <-stop:
			return fmt.Errorf("a role stopped: %v", serr)
		case <-deadline.C:
			return fmt.Errorf("gave up after %s: %w", timeout, err)
		case <-tick.C:
		}
	}
}
