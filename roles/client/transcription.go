package client

import (
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/cocoon-network/cocoon/gpu"
)

// formBody says whether a request's Content-Type is a multipart form with a boundary, the only
// body /v1/audio/transcriptions takes.
func formBody(contentType string) bool {
	mt, params, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "multipart/form-data" && params["boundary"] != ""
}

func errFormContentType(contentType string) *apiError {
	return newError(http.StatusUnsupportedMediaType, "invalid_request_error", "unsupported_media_type",
		"Content-Type "+strconv.Quote(contentType)+" is not accepted: send the audio as multipart/form-data with a file and a model field")
}

// jsonFormats are the transcription answer formats that are JSON, which carry the usage a
// request is metered by; text, srt and vtt answers carry none.
var jsonFormats = map[string]bool{"": true, "json": true, "verbose_json": true}

// parseTranscription reads a transcription's multipart form as the engine reads it (gpu.Form: the
// last of repeated fields) and returns it written again canonically, so that the worker and the
// engine read the same parts, whatever the app's form looked like.
func parseTranscription(body []byte, contentType string) (request, []byte, *apiError) {
	var req request
	form, err := gpu.ParseForm(body, contentType)
	if err != nil {
		return req, nil, errBadRequest("request body: " + strings.TrimPrefix(err.Error(), gpu.ErrBadRequest.Error()+": "))
	}
	facts, err := form.Facts()
	if err != nil {
		return req, nil, errParam("stream", "stream: must be true or false")
	}
	if facts.Model == "" {
		return req, nil, errParam("model", "model: the form needs a non-empty model field")
	}
	if form.File("file") == nil {
		return req, nil, errParam("file", "file: the form needs the audio as a file part named file")
	}
	if f, _ := form.Value("response_format"); !jsonFormats[f] {
		return req, nil, errParam("response_format", "response_format: "+strconv.Quote(f)+
			" answers carry no usage to meter the request by; use json or verbose_json")
	}
	req.model, req.stream = facts.Model, facts.Stream
	if v, _ := form.Value("stream_include_usage"); facts.Stream && strings.EqualFold(strings.TrimSpace(v), "true") {
		req.includeUsage = true // vLLM's spelling of stream_options.include_usage for a form
	}
	out, _ := form.Encode()
	return req, out, nil
}
