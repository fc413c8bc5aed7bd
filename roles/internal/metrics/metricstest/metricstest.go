// Package metricstest parses a role's /metrics page in tests and checks that no label carries
// what must never leave a node: an address, a key, a prompt. A non-test package so that every
// role's tests can use it.
package metricstest

import (
	"io"
	"net/http"
	"regexp"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// Families is a parsed /metrics page, by metric name.
type Families map[string]*dto.MetricFamily

// Get fetches url with the given header pairs and parses the answer, which must be 200.
func Get(t *testing.T, url string, header ...string) Families {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return Parse(t, resp.Body)
}

// Parse reads the Prometheus text format and checks every label with Labels.
func Parse(t *testing.T, r io.Reader) Families {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	require.NoError(t, err)
	Labels(t, fams)
	return fams
}

// allowed are the only label names a cocoon series may carry.
var allowed = map[string]bool{"outcome": true, "class": true, "model": true}

// secretish matches label values shaped like an address (host:port, IP, TON address) or a key
// (long hex or base64).
var secretish = regexp.MustCompile(`:|\d+\.\d+\.\d+|[0-9a-fA-F]{16,}|[A-Za-z0-9+/_-]{32,}|@`)

// Labels fails when a cocoon series has a label other than outcome, class or model, or a label
// value that looks like an address or a key.
func Labels(t *testing.T, fams Families) {
	t.Helper()
	for name, f := range fams {
		if !regexp.MustCompile(`^cocoon_`).MatchString(name) {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				require.True(t, allowed[l.GetName()], "%s has label %q", name, l.GetName())
				require.False(t, secretish.MatchString(l.GetValue()), "%s{%s=%q} looks like an address or a key",
					name, l.GetName(), l.GetValue())
			}
		}
	}
}

// Value is the value of the series name whose labels include the given name/value pairs: a
// counter's or gauge's value, a histogram's count. It fails when there is no such series.
func Value(t *testing.T, fams Families, name string, labels ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	require.True(t, ok, "no series %s", name)
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	require.Failf(t, "no such series", "%s%v", name, labels)
	return 0
}

// Gauge is the value of the gauge name (its first series), and whether fams has it; unlike Value
// it never fails, for conditions polled until they hold.
func Gauge(fams Families, name string) (float64, bool) {
	f, ok := fams[name]
	if !ok || len(f.GetMetric()) == 0 || f.GetMetric()[0].GetGauge() == nil {
		return 0, false
	}
	return f.GetMetric()[0].GetGauge().GetValue(), true
}
