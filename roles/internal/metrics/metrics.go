// Package metrics serves a role's Prometheus /metrics from a registry of its own, so that several
// roles in one process (cocoon demo) never share or collide in a global registry. Every series is
// read from the role's existing counters when scraped: the figures on /metrics and /jsonstats are
// the same numbers. Names follow Prometheus conventions (cocoon_<role>_…_total for counters, base
// units: seconds, nanoTON); labels are outcome, class or model at most, never a prompt, a key or an
// address. Imported by roles/internal/statsweb and the role packages' stats.go only.
package metrics

import (
	"net/http"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Set is one role's registry; its metric names all start with cocoon_<role>_.
type Set struct {
	reg    *prometheus.Registry
	prefix string
}

// StreamsHeldHelp is the help of each role's quic_streams_held gauge (transport.Conns.HeldStreams).
const StreamsHeldHelp = "Request streams this node is not done with on its live connections, which QUIC keeps " +
	"while they last: a figure that grows with the requests served, not with those under way, is memory leaking."

// New returns an empty Set for role, with the Go runtime and process collectors registered.
func New(role string) *Set {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Set{reg: reg, prefix: "cocoon_" + role + "_"}
}

// Handler serves the Set in the Prometheus text (or negotiated) exposition format.
func (s *Set) Handler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})
}

// Gatherer is the Set's registry, for tests.
func (s *Set) Gatherer() prometheus.Gatherer { return s.reg }

// Counter exposes read, a monotonic count, as the counter cocoon_<role>_<name>.
func (s *Set) Counter(name, help string, read func() float64) {
	s.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: s.prefix + name, Help: help}, read))
}

// Gauge exposes read as the gauge cocoon_<role>_<name>.
func (s *Set) Gauge(name, help string, read func() float64) {
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: s.prefix + name, Help: help}, read))
}

// CounterVec exposes read's map, label value → monotonic count, as the counter
// cocoon_<role>_<name> with one label.
func (s *Set) CounterVec(name, help, label string, read func() map[string]float64) {
	s.reg.MustRegister(&vec{desc: prometheus.NewDesc(s.prefix+name, help, []string{label}, nil),
		kind: prometheus.CounterValue, read: read})
}

// Histogram exposes read, a cumulative distribution in seconds, as the histogram cocoon_<role>_<name>.
func (s *Set) Histogram(name, help string, read func() Distribution) {
	s.reg.MustRegister(&hist{desc: prometheus.NewDesc(s.prefix+name, help, nil, nil), read: read})
}

// Distribution is a cumulative histogram: Buckets maps each upper bound to the number of
// observations not above it.
type Distribution struct {
	Count   uint64
	Sum     float64
	Buckets map[float64]uint64
}

type vec struct {
	desc *prometheus.Desc
	kind prometheus.ValueType
	read func() map[string]float64
}

func (v *vec) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }

func (v *vec) Collect(ch chan<- prometheus.Metric) {
	m := v.read()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ch <- prometheus.MustNewConstMetric(v.desc, v.kind, m[k], k)
	}
}

type hist struct {
	desc *prometheus.Desc
	read func() Distribution
}

func (h *hist) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

func (h *hist) Collect(ch chan<- prometheus.Metric) {
	d := h.read()
	ch <- prometheus.MustNewConstHistogram(h.desc, d.Count, d.Sum, d.Buckets)
}
