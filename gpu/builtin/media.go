package builtin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"math"
	"strconv"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/gpu/oaierr"
	"github.com/cocoon-network/cocoon/settle"
)

// defaultDimensions is the length of an embedding when the request names no dimensions.
const defaultDimensions = 16

// embed answers /v1/embeddings: one unit vector per input, derived from the input's hash, so
// that the same text always embeds the same way; base64 (little-endian float32, as OpenAI sends
// it, and as OpenAI's SDKs ask for by default) or float lists.
func (e *Engine) embed(body []byte) ([]byte, settle.Usage, *oaierr.Error) {
	if !json.Valid(body) {
		return nil, settle.Usage{}, badRequest("request body is not valid JSON for this endpoint")
	}
	body = bytes.TrimSpace(body)
	var model, input, format, dims []byte
	if err := pick(body, field{"model", &model}, field{"input", &input}, field{"encoding_format", &format}, field{"dimensions", &dims}); err != nil {
		return nil, settle.Usage{}, badRequest("request body must be a JSON object")
	}
	if m, err := stringValue(model); err != nil || (m != "" && m != e.cfg.Model) {
		return nil, settle.Usage{}, errUnknownModel(m)
	}
	enc, err := stringValue(format)
	if err != nil || (enc != "" && enc != "float" && enc != "base64") {
		return nil, settle.Usage{}, badParam("encoding_format", "encoding_format must be float or base64")
	}
	n := int64(defaultDimensions)
	if !isNull(dims) && (json.Unmarshal(dims, &n) != nil || n < 1 || n > 4096) {
		return nil, settle.Usage{}, badParam("dimensions", "dimensions must be an integer from 1 to 4096")
	}
	var texts []string
	switch {
	case isNull(input):
		return nil, settle.Usage{}, badParam("input", "input is required")
	case input[0] == '"':
		s, _ := stringValue(input)
		texts = []string{s}
	default:
		// A list of strings, or token ids (one input) or lists of them, read as their text.
		if err := elements(input, func(v []byte) error {
			if v[0] == '"' {
				s, err := stringValue(v)
				texts = append(texts, s)
				return err
			}
			texts = append(texts, string(v))
			return nil
		}); err != nil || len(texts) == 0 {
			return nil, settle.Usage{}, badParam("input", "input must be a string or a non-empty array")
		}
	}
	var b []byte
	b = append(b, `{"object":"list","data":[`...)
	var u settle.Usage
	for i, t := range texts {
		if i > 0 {
			b = append(b, ',')
		}
		u.PromptTokens += uint64(max(CountTokens(t), 1))
		b = append(b, `{"object":"embedding","index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"embedding":`...)
		b = appendVector(b, vector(t, int(n)), enc == "base64")
		b = append(b, '}')
	}
	b = append(b, `],"model":`...)
	q, _ := json.Marshal(e.cfg.Model)
	b = append(b, q...)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = strconv.AppendUint(b, u.PromptTokens, 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendUint(b, u.PromptTokens, 10)
	return append(b, "}}"...), u, nil
}

// vector is the unit vector of n dimensions that text embeds to.
func vector(text string, n int) []float32 {
	v := make([]float32, n)
	var norm float64
	for i := range v {
		h := fnv.New64a()
		var idx [8]byte
		binary.LittleEndian.PutUint64(idx[:], uint64(i))
		h.Write(idx[:])
		h.Write([]byte(text))
		x := float64(h.Sum64()>>11)/float64(1<<53)*2 - 1
		v[i] = float32(x)
		norm += x * x
	}
	for i := range v {
		v[i] = float32(float64(v[i]) / math.Sqrt(norm))
	}
	return v
}

func appendVector(b []byte, v []float32, b64 bool) []byte {
	if b64 {
		raw := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, raw)
		return append(b, '"')
	}
	b = append(b, '[')
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, float64(x), 'g', -1, 32)
	}
	return append(b, ']')
}

// audioBytesPerToken is how much audio the built-in engine counts as one input token.
const audioBytesPerToken = 1000

// transcribe answers /v1/audio/transcriptions: a multipart form with the audio in its file part.
// The "transcript" is the engine's usual text, chosen by the audio's hash; its usage counts the
// audio as input tokens (one per audioBytesPerToken bytes) and the text as output tokens, as
// OpenAI's token-metered transcription models report it.
func (e *Engine) parseTranscription(body []byte, contentType string) (job, *oaierr.Error) {
	form, err := gpu.ParseForm(body, contentType)
	if err != nil {
		return job{}, badRequest("request body is not a valid multipart form")
	}
	if m, _ := form.Value("model"); m != "" && m != e.cfg.Model {
		return job{}, errUnknownModel(m)
	}
	if f, _ := form.Value("response_format"); f != "" && f != "json" && f != "verbose_json" {
		return job{}, badParam("response_format", "response_format must be json or verbose_json")
	}
	facts, err := form.Facts()
	if err != nil {
		return job{}, badParam("stream", "stream must be true or false")
	}
	file := form.File("file")
	if file == nil || len(file.Data) == 0 {
		return job{}, badParam("file", "file is required")
	}
	h := fnv.New64a()
	h.Write(file.Data)
	audio := (len(file.Data) + audioBytesPerToken - 1) / audioBytesPerToken
	return e.newJob(gpu.KindTranscription, h.Sum64(), audio, "", nil, facts.Stream, false)
}

// transcript is the answer to a transcription job.
func (e *Engine) transcript(ctx context.Context, j *job) ([]byte, error) {
	q, err := e.quotedText(ctx, j)
	if err != nil {
		return nil, err
	}
	return appendTranscriptUsage(append([]byte(`{"text":`), q...), j), nil
}

// streamTranscript produces the events of a streamed transcription in OpenAI's shape: a
// transcript.text.delta per token, then transcript.text.done with the whole text and the usage.
func (e *Engine) streamTranscript(ctx context.Context, j *job, emit func(data []byte) error) error {
	var text, buf []byte
	if err := e.tokens(ctx, j, func(q []byte, s string) error {
		text = append(text, s...)
		buf = append(append(append(buf[:0], `{"type":"transcript.text.delta","delta":`...), q...), '}')
		return emit(buf)
	}); err != nil {
		return err
	}
	q, _ := json.Marshal(string(text))
	return emit(appendTranscriptUsage(append(append(buf[:0], `{"type":"transcript.text.done","text":`...), q...), j))
}

// appendTranscriptUsage ends a transcript object with its usage.
func appendTranscriptUsage(b []byte, j *job) []byte {
	b = append(b, `,"usage":{"type":"tokens","input_tokens":`...)
	b = strconv.AppendInt(b, j.promptTokens, 10)
	b = append(b, `,"input_token_details":{"audio_tokens":`...)
	b = strconv.AppendInt(b, j.promptTokens, 10)
	b = append(b, `,"text_tokens":0},"output_tokens":`...)
	b = strconv.AppendInt(b, int64(j.produced), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, j.promptTokens+int64(j.produced), 10)
	return append(b, "}}"...)
}
