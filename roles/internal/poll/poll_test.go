package poll

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestUntil(t *testing.T) {
	errNotYet := errors.New("not yet")
	testCases := map[string]struct {
		ctx     func() context.Context
		stop    func() <-chan error
		f       func() func() error
		timeout time.Duration
		wantErr string
		wantIs  error
	}{
		"true at once": {
			f: func() func() error { return func() error { return nil } },
		},
		"true on the third call": {
			f: func() func() error {
				n := 0
				return func() error {
					if n++; n < 3 {
						return errNotYet
					}
					return nil
				}
			},
		},
		"times out with the last answer": {
			f:       func() func() error { return func() error { return errNotYet } },
			timeout: 3 * Every,
			wantErr: "gave up after 60ms: not yet",
			wantIs:  errNotYet,
		},
		"a role stops": {
			f: func() func() error { return func() error { return errNotYet } },
			stop: func() <-chan error {
				c := make(chan error, 1)
				c <- errors.New("proxy exited")
				return c
			},
			wantErr: "a role stopped: proxy exited",
		},
		"context ends": {
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			f:       func() func() error { return func() error { return errNotYet } },
			wantErr: "context canceled (last: not yet)",
			wantIs:  context.Canceled,
		},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx()
			}
			var stop <-chan error
			if tc.stop != nil {
				stop = tc.stop()
			}
			timeout := tc.timeout
			if timeout == 0 {
				timeout = time.Minute
			}
			err := Until(ctx, timeout, stop, tc.f())
			if tc.wantErr == "" {
				require.NoError(err)
				return
			}
			require.EqualError(err, tc.wantErr)
			if tc.wantIs != nil {
				assert.ErrorIs(err, tc.wantIs)
			}
		})
	}
}
