// Package statsweb serves a role's /healthz, /jsonstats, /stats (the role's page for its operator,
// or for a Source without one the JSON as tables) and, for a Source that is also Metered,
// Prometheus /metrics. It also holds what the pages share: their layout, the formatting of
// amounts, durations and rates, and the rates themselves. Stats never contain prompts,
// completions or keys: only counts, sizes, addresses, hashes and durations.
package statsweb

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"sort"
	"strings"

	"github.com/cocoon-network/cocoon/roles/internal/metrics"
)

// Source provides a role's health and stats.
type Source interface {
	Healthy() error
	Stats() any
}

// Metered is a Source that also exposes its counters on /metrics.
type Metered interface {
	// Metrics registers the role's series in set.
	Metrics(set *metrics.Set)
}

// MetricsHandler serves /metrics for role from a registry of its own.
func MetricsHandler(role string, m Metered) http.Handler {
	set := metrics.New(role)
	m.Metrics(set)
	return set.Handler()
}

// Register adds the endpoints to mux: /healthz, /jsonstats, /stats, and /metrics when src is Metered.
func Register(mux *http.ServeMux, role string, src Source) {
	if m, ok := src.(Metered); ok {
		mux.Handle("GET /metrics", MetricsHandler(role, m))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := src.Healthy(); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /jsonstats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(src.Stats())
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		if pg, ok := src.(Pager); ok {
			page, data := pg.Page()
			page.Render(w, View{Role: role, Health: src.Healthy(), Data: data})
			return
		}
		b, err := json.Marshal(src.Stats())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		var v any
		_ = json.Unmarshal(b, &v)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=5>"+
			"<title>cocoon %s</title><style>body{font:14px system-ui,sans-serif;margin:2em}"+
			"table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}"+
			"th{background:#f4f4f4}</style></head><body><h1>cocoon %s</h1>", html.EscapeString(role), html.EscapeString(role))
		health := "healthy"
		if err := src.Healthy(); err != nil {
			health = "UNHEALTHY: " + err.Error()
		}
		fmt.Fprintf(w, "<p>%s · <a href=jsonstats>jsonstats</a></p>", html.EscapeString(health))
		var sb strings.Builder
		render(&sb, v)
		_, _ = w.Write([]byte(sb.String()))
		_, _ = w.Write([]byte("</body></html>"))
	})
}

// render writes JSON values as nested HTML tables.
func render(sb *strings.Builder, v any) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		sb.WriteString("<table>")
		for _, k := range keys {
			sb.WriteString("<tr><th>" + html.EscapeString(k) + "</th><td>")
			render(sb, v[k])
			sb.WriteString("</td></tr>")
		}
		sb.WriteString("</table>")
	case []any:
		if len(v) == 0 {
			sb.WriteString("—")
			return
		}
		for _, e := range v {
			render(sb, e)
		}
	case nil:
		sb.WriteString("—")
	default:
		sb.WriteString(html.EscapeString(fmt.Sprint(v)))
	}
}
