package doctorcmd

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/urfave/cli/v2"

	"github.com/cocoon-network/cocoon/config"
)

func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	app := &cli.App{Name: "cocoon", Commands: []*cli.Command{Command("test")}, ExitErrHandler: func(*cli.Context, error) {}}
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	err := app.Run(append([]string{"cocoon", "doctor"}, args...))
	var ec cli.ExitCoder
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ec):
		return out.String() + err.Error(), ec.ExitCode()
	}
	return out.String() + err.Error(), 1
}

// TestFlagsOfEveryRole: a flag name several roles share has one type, so one definition reads
// it for each.
func TestFlagsOfEveryRole(t *testing.T) {
	kinds := map[string]reflect.Type{}
	for _, role := range roles {
		for _, f := range config.Flags(role) {
			name := f.Names()[0]
			if k, ok := kinds[name]; ok {
				assert.Equal(t, k, reflect.TypeOf(f), "--%s", name)
			}
			kinds[name] = reflect.TypeOf(f)
		}
	}
	assert.Len(t, flags(), len(kinds)+1, "each name once, and --role")
}

func TestDoctorCommand(t *testing.T) {
	data := t.TempDir()
	testCases := map[string]struct {
		args     []string
		wantCode int
		want     []string
	}{
		"unknown role":        {args: []string{"--role", "miner"}, wantCode: 2, want: []string{"want proxy, worker or client"}},
		"another role's flag": {args: []string{"--role", "proxy", "--engine-url", "http://e"}, wantCode: 2, want: []string{"--engine-url is not a proxy setting"}},
		"an argument":         {args: []string{"now"}, wantCode: 2, want: []string{"takes no arguments"}},
		"bad configuration":   {args: []string{"--config", "/nonexistent.yaml"}, wantCode: 1, want: []string{"nonexistent.yaml"}},
		"no proxy answers": {args: []string{"--role", "worker", "--sim", "--data", data, "--proxies", "127.0.0.1:1", "--stats-listen", "127.0.0.1:0"}, wantCode: 1,
			want: []string{"cocoon doctor: worker (defaults and flags)\n", "warn  tdx ", "fail  proxies     none of 1 from worker.proxies: 127.0.0.1:1: no answer over UDP", "1 check(s) failed (proxies)"}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			out, code := run(t, tc.args...)
			assert.Equal(t, tc.wantCode, code, out)
			for _, w := range tc.want {
				assert.Contains(t, out, w)
			}
		})
	}
}
