package builtin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/oaierr"
)

func (e *Engine) routes() {
	e.mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		e.serveCompletion(w, r, gpu.KindChat)
	})
	e.mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) {
		e.serveCompletion(w, r, gpu.KindCompletion)
	})
	e.mux.HandleFunc("POST /v1/responses", func(w http.ResponseWriter, r *http.Request) {
		e.serveCompletion(w, r, gpu.KindResponses)
	})
	e.mux.HandleFunc("POST /v1/embeddings", func(w http.ResponseWriter, r *http.Request) {
		e.serveCompletion(w, r, gpu.KindEmbeddings)
	})
	e.mux.HandleFunc("POST /v1/audio/transcriptions", func(w http.ResponseWriter, r *http.Request) {
		e.serveCompletion(w, r, gpu.KindTranscription)
	})
	e.mux.HandleFunc("GET /v1/models", e.serveModels)
	e.mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
}

// ServeHTTP implements http.Handler.
func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request) { e.mux.ServeHTTP(w, r) }

func (e *Engine) serveModels(w http.ResponseWriter, _ *http.Request) {
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	b, _ := json.Marshal(struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{"list", []model{{e.cfg.Model, "model", e.cfg.Now().Unix(), "cocoon"}}})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (e *Engine) serveCompletion(w http.ResponseWriter, r *http.Request, kind gpu.Kind) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			errTooLarge().Write(w)
			return
		}
		badRequest("could not read request body").Write(w)
		return
	}
	if kind == gpu.KindEmbeddings {
		b, _, aerr := e.embed(body)
		if aerr != nil {
			aerr.Write(w)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
		return
	}
	var (
		j    job
		aerr *oaierr.Error
	)
	if kind == gpu.KindTranscription {
		j, aerr = e.parseTranscription(body, r.Header.Get("Content-Type"))
	} else {
		j, aerr = e.parse(kind, body)
	}
	if aerr != nil {
		aerr.Write(w)
		return
	}
	if !j.stream {
		b, err := e.answer(r.Context(), &j)
		if err != nil {
			return // the client went away
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	var line []byte
	send := func(data []byte) error {
		line = append(append(append(line[:0], "data: "...), data...), "\n\n"...)
		if _, err := w.Write(line); err != nil {
			return err
		}
		return rc.Flush()
	}
	if kind == gpu.KindTranscription {
		_ = e.streamTranscript(r.Context(), &j, send) // no [DONE]: transcript.text.done ends it
		return
	}
	if kind == gpu.KindResponses {
		// Named events and no [DONE], as OpenAI streams a response.
		_ = e.streamResponse(r.Context(), &j, func(typ string, data []byte) error {
			line = append(append(append(append(append(line[:0], "event: "...), typ...), "\ndata: "...), data...), "\n\n"...)
			if _, err := w.Write(line); err != nil {
				return err
			}
			return rc.Flush()
		})
		return
	}
	if err := e.stream(r.Context(), &j, func(data []byte, _ bool) error { return send(data) }); err != nil {
		return
	}
	_ = send([]byte("[DONE]"))
}
