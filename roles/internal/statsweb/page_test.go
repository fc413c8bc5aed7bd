package statsweb

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type plain struct{ health error }

func (p plain) Healthy() error { return p.health }
func (plain) Stats() any       { return map[string]any{"served": 3} }

type paged struct{ plain }

var testPage = NewPage(`<p>served {{.Served}} for {{ton .Earned}} ({{nano .Earned}})</p>`)

func (paged) Page() (*Page, any) {
	return testPage, struct{ Served, Earned uint64 }{3, 4480}
}

func TestStatsPage(t *testing.T) {
	testCases := map[string]struct {
		src  Source
		want []string
	}{
		"a role's own page": {src: paged{}, want: []string{"<title>cocoon r</title>", "healthy", "served 3 for 0.00000448 TON (4,480 nanoTON)",
			`href="jsonstats"`}},
		"unhealthy":      {src: paged{plain{errors.New("engine not answering")}}, want: []string{"unhealthy: engine not answering"}},
		"without a page": {src: plain{}, want: []string{"<th>served</th><td>3</td>"}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			require := require.New(t)
			mux := http.NewServeMux()
			Register(mux, "r", tc.src)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/stats") //nolint:noctx // test
			require.NoError(err)
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			require.NoError(err)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
			for _, want := range tc.want {
				assert.Contains(t, string(b), want)
			}
			assert.NotContains(t, string(b), "http://", "nothing loaded or linked from elsewhere")
		})
	}
}
