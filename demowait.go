package main

import (
	"context"
	"fmt"
	"time"
)

// pollUntil is what demo.go waits with. It repeats roles/internal/poll.Until because package main
// cannot import roles/internal; it goes when the demo moves under roles/ and calls poll.Until.
func pollUntil(ctx context.Context, timeout time.Duration, stop <-chan error, f func() error) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
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
