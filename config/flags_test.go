package config

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"
)

// TestFlagsShowTheDefaults: for every flag of every role, the default --help shows is the value
// the program uses. Giving that value explicitly yields exactly Defaults(); a flag whose default
// is derived (<data>/tdx-sim) shows a description and has no value of its own.
func TestFlagsShowTheDefaults(t *testing.T) {
	for _, role := range []string{"proxy", "worker", "client"} {
		for _, f := range Flags(role)[1:] { // [0] is --config
			name := f.Names()[0]
			t.Run(role+" --"+name, func(t *testing.T) {
				assert := assert.New(t)
				require := require.New(t)
				df, ok := f.(cli.DocGenerationFlag)
				require.True(ok)
				shown := df.GetDefaultText()
				value := shown
				if s, ok := f.(*cli.StringFlag); ok {
					if s.DefaultText != "" {
						assert.Empty(s.Value, "a described default has no value of its own")
						assert.NotContains(s.DefaultText, `"`)
						value = ""
					} else if shown != "" {
						var err error
						value, err = strconv.Unquote(shown)
						require.NoError(err, "a string default is shown quoted")
					}
				}
				got, err := fromArgs(role, "--"+name+"="+value)
				require.NoError(err)
				assert.Equal(Defaults(), got, "--%s=%s changes the configuration: the shown default (%s) is not the real one", name, value, shown)
			})
		}
	}
}

// TestIntegerFlagsInRange: a number a setting cannot hold is refused with the flag named, never
// wrapped around.
func TestIntegerFlagsInRange(t *testing.T) {
	testCases := map[string]struct {
		role    string
		args    []string
		check   func(*assert.Assertions, Config)
		wantErr string
	}{
		"coefficient":          {role: "worker", args: []string{"--coefficient", "1500"}, check: func(a *assert.Assertions, c Config) { a.Equal(uint32(1500), c.Worker.Coefficient) }},
		"coefficient negative": {role: "worker", args: []string{"--coefficient", "-1"}, wantErr: "--coefficient -1: out of range"},
		"coefficient too big":  {role: "worker", args: []string{"--coefficient", "4294968296"}, wantErr: "--coefficient 4294968296: out of range"},
		"threshold negative":   {role: "client", args: []string{"--submit-threshold", "-5"}, wantErr: "--submit-threshold -5: out of range"},
		"threshold":            {role: "client", args: []string{"--submit-threshold", "5"}, check: func(a *assert.Assertions, c Config) { a.Equal(uint64(5), c.Payments.SubmitThreshold) }},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			got, err := fromArgs(tc.role, tc.args...)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(assert.New(t), got)
		})
	}
}

// TestFlagPlaceholders: no usage text names a placeholder by accident (urfave/cli takes the first
// `quoted` words of a usage as the value's name).
func TestFlagPlaceholders(t *testing.T) {
	for _, role := range []string{"proxy", "worker", "client"} {
		for _, f := range Flags(role) {
			usage := f.(cli.DocGenerationFlag).GetUsage()
			if i := strings.IndexByte(usage, '`'); i >= 0 {
				j := strings.IndexByte(usage[i+1:], '`')
				require.GreaterOrEqual(t, j, 0, "--%s: unmatched backquote", f.Names()[0])
				assert.Regexp(t, `^[A-Z][A-Z:]*$`, usage[i+1:i+1+j], "--%s: a placeholder is an upper-case word", f.Names()[0])
			}
		}
	}
}
