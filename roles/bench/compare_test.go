package bench

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCompareRows(t *testing.T) {
	newReport := func(rps, cpu float64) *report {
		r := &report{Roles: map[string]*roleStats{"proxy": {CPUSPerReq: cpu / 1000}},
			Handshakes: &handshakeStats{PerS: rps, ProxyCPUMsPer: cpu}}
		r.check("handshakes", "≥ 500/s", rps, "/s", rps >= 500)
		return r
	}
	c := &comparison{Bins: [2]string{"new", "old"}, Reports: [2]*report{newReport(520, 1.6), newReport(300, 3.2)}}
	c.Rows = compareRows(c.Reports[0], c.Reports[1])
	got := map[string][2]string{}
	for _, r := range c.Rows {
		got[r.Figure] = r.Got
	}
	assert.Equal(t, [2]string{"520/s", "300/s"}, got["handshakes"])
	assert.Equal(t, [2]string{"1.600 ms", "3.200 ms"}, got["CPU per request: proxy"])
	assert.Equal(t, [2]string{"1.60 ms", "3.20 ms"}, got["proxy CPU per attested handshake"])
	assert.NotContains(t, got, "CPU per request: client", "a role neither report has")
	assert.NotContains(t, got, "client handshakes per second")

	var out bytes.Buffer
	require.NoError(t, c.write(&out, false))
	assert.Contains(t, out.String(), "== with the roles of old")
	assert.Regexp(t, `proxy CPU per attested handshake +1\.60 ms +3\.20 ms`, out.String())
}

func TestRunOrderAlternates(t *testing.T) {
	first := [2]int{}
	for i := range 4 {
		o := runOrder(i)
		require.ElementsMatch(t, []int{0, 1}, o[:], "round %d runs each binary once", i)
		first[o[0]]++
	}
	require.Equal(t, [2]int{2, 2}, first, "each binary runs first in half the rounds")
}
