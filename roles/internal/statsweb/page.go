package statsweb

import (
	"bytes"
	"html/template"
	"net/http"
	"time"
)

// Page is a role's /stats page for its operator: a template of the role's own content, rendered
// inside the layout every role's page shares (title, health line, style, refresh). It loads
// nothing from elsewhere and links only to the node's own endpoints.
type Page struct{ t *template.Template }

// NewPage parses body, the page's content, with Funcs. The body's data is View.Data.
func NewPage(body string) *Page {
	t := template.Must(template.New("layout").Funcs(Funcs).Parse(layout))
	template.Must(t.New("body").Parse(body))
	return &Page{t: t}
}

// View is one rendering of a page.
type View struct {
	Role   string
	Health error // nil: healthy
	Data   any
	At     time.Time // when it was rendered; zero: now
}

// Render writes v as the page, or a 500 naming what failed.
func (p *Page) Render(w http.ResponseWriter, v View) {
	b, err := p.HTML(v)
	if err != nil {
		http.Error(w, "render the stats page: "+err.Error()+" (a bug: /jsonstats has the same figures)", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// HTML is v as the page.
func (p *Page) HTML(v View) ([]byte, error) {
	if v.At.IsZero() {
		v.At = time.Now()
	}
	var buf bytes.Buffer
	err := p.t.Execute(&buf, v)
	return buf.Bytes(), err
}

// Pager is a Source with a page of its own for /stats.
type Pager interface {
	Source
	// Page is the page and the data it shows now.
	Page() (*Page, any)
}

const layout = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cocoon {{.Role}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1b1f24}
header{background:#1b2a3a;color:#fff;padding:.8em 1.5em}header h1{margin:0;font-size:1.4em}
main{padding:1em 1.5em;max-width:1200px}
h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #d0d4da;padding-bottom:.2em}
.health{display:inline-block;margin-top:.4em;padding:.15em .6em;border-radius:3px;font-weight:600}
.health.ok{background:#1f7a3a;color:#fff}.health.bad{background:#b3261e;color:#fff}
.figs{display:flex;flex-wrap:wrap;gap:.6em}
.fig{background:#fff;border:1px solid #d0d4da;border-radius:4px;padding:.5em .8em;min-width:9em}
.fig .k{color:#5b6470;font-size:.85em}.fig .v{font-size:1.25em;font-weight:600}.fig .s{color:#5b6470;font-size:.8em}
table{border-collapse:collapse;background:#fff;margin:.3em 0 .8em}
td,th{border:1px solid #d0d4da;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef0f3;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,monospace;word-break:break-all}
.bad{color:#b3261e;font-weight:600}.ok{color:#1f7a3a;font-weight:600}.warn{color:#8a5a00;font-weight:600}
.muted{color:#5b6470}footer{padding:1em 1.5em;color:#5b6470;font-size:.85em}
</style></head>
<body><header><h1>cocoon {{.Role}}</h1>
{{if .Health}}<span class="health bad">unhealthy: {{.Health}}</span>{{else}}<span class="health ok">healthy</span>{{end}}</header>
<main>{{template "body" .Data}}</main>
<footer>Rendered {{.At.UTC.Format "2006-01-02 15:04:05"}} UTC; reloads every 5 s.
Amounts in TON with their nanoTON; rates per second over the last minute.
For programs: <a href="jsonstats">/jsonstats</a> · <a href="metrics">/metrics</a> · <a href="healthz">/healthz</a></footer>
</body></html>
`
