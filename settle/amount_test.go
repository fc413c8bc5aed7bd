package settle

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFormatTON(t *testing.T) {
	testCases := map[string]struct {
		in      string
		want    uint64
		wantErr bool
	}{
		"whole":           {in: "2", want: 2_000_000_000},
		"fraction":        {in: "1.5", want: 1_500_000_000},
		"nano":            {in: "0.000000001", want: 1},
		"leading dot":     {in: ".25", want: 250_000_000},
		"too many digits": {in: "0.0000000001", wantErr: true},
		"negative":        {in: "-1", wantErr: true},
		"exponent":        {in: "1e9", wantErr: true},
		"empty":           {in: "", wantErr: true},
		"dot":             {in: ".", wantErr: true},
		"overflow":        {in: "18446744074", wantErr: true},
		"words":           {in: "one", wantErr: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseTON(tc.in)
			if tc.wantErr {
				require.ErrorIs(t, err, ErrBadAmount)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			again, err := ParseTON(FormatTON(got))
			require.NoError(t, err)
			assert.Equal(t, got, again, "format round-trips")
		})
	}
	assert.Equal(t, "0", FormatTON(0))
	assert.Equal(t, "1.000000001", FormatTON(1_000_000_001))
}
