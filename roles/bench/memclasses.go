package bench

import (
	"fmt"
	"runtime/metrics"
	"strconv"
	"strings"
)

// memoryClasses lists the runtime's /memory/classes/ metrics, one "name bytes" per line: a heap
// profile shows live objects only, while goroutine stacks and the heap's free spans are much of a
// role's memory per stream.
func memoryClasses() string {
	var samples []metrics.Sample
	for _, d := range metrics.All() {
		if strings.HasPrefix(d.Name, "/memory/classes/") {
			samples = append(samples, metrics.Sample{Name: d.Name})
		}
	}
	metrics.Read(samples)
	var b strings.Builder
	for _, s := range samples {
		if s.Value.Kind() == metrics.KindUint64 {
			fmt.Fprintf(&b, "%s %d\n", s.Name, s.Value.Uint64())
		}
	}
	return b.String()
}

// gcReport is what a role wrote after a collection it was asked for: how many it made so far and
// its memory classes then.
type gcReport struct {
	count   int
	classes map[string]uint64
}

// Memory classes the bench reports per open stream.
const (
	classStacks  = "/memory/classes/heap/stacks:bytes"
	classObjects = "/memory/classes/heap/objects:bytes"
)

// parseGCReport reads a role's gc file: the count on the first line, then memoryClasses' lines.
func parseGCReport(b []byte) (gcReport, error) {
	first, rest, _ := strings.Cut(string(b), "\n")
	n, err := strconv.Atoi(first)
	if err != nil {
		return gcReport{}, fmt.Errorf("gc file: count %q: %w", first, err)
	}
	r := gcReport{count: n, classes: map[string]uint64{}}
	for line := range strings.Lines(rest) {
		name, value, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		v, err := strconv.ParseUint(value, 10, 64)
		if !ok || err != nil {
			return gcReport{}, fmt.Errorf("gc file: line %q is not a memory class and its bytes", line)
		}
		r.classes[name] = v
	}
	return r, nil
}
