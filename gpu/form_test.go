package gpu

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadKindFacts(t *testing.T) {
	testCases := map[string]struct {
		kind      Kind
		body      string
		want      Limits
		model     string
		stream    bool
		unbounded string // a part of the reason, "" for none
		wantErr   bool
	}{
		"responses": {kind: KindResponses, model: "m", stream: true,
			body: `{"model":"m","stream":true,"max_output_tokens":50,"max_output_tokens":60,"input":[{"role":"user","content":[{"type":"input_text","text":"hi"},{"type":"input_image","image_url":"x"}]},{"type":"function_call_output","call_id":"c","output":[{"type":"input_image","image_url":"y"}]}]}`,
			want: Limits{MaxOutputTokens: 60, Prompts: 1, Images: 2}},
		"responses string input": {kind: KindResponses, model: "m", body: `{"model":"m","input":"hello","tools":[{"type":"function","name":"f"}]}`,
			want: Limits{Prompts: 1}},
		"responses previous_response_id": {kind: KindResponses, model: "m", body: `{"model":"m","input":"x","previous_response_id":"resp_1"}`, unbounded: "previous_response_id"},
		"responses item_reference":       {kind: KindResponses, model: "m", body: `{"model":"m","input":[{"type":"item_reference","id":"i"}]}`, unbounded: "item_reference"},
		"responses file":                 {kind: KindResponses, model: "m", body: `{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}`, unbounded: "input_file"},
		"responses web search":           {kind: KindResponses, model: "m", body: `{"model":"m","input":"x","tools":[{"type":"web_search"}]}`, unbounded: "web_search"},
		"responses background":           {kind: KindResponses, model: "m", body: `{"model":"m","input":"x","background":true}`, unbounded: "background"},
		"responses negative limit":       {kind: KindResponses, body: `{"model":"m","max_output_tokens":-1}`, wantErr: true},
		"embeddings list":                {kind: KindEmbeddings, model: "m", body: `{"model":"m","input":["a","b","c"],"max_tokens":9}`, want: Limits{Prompts: 3}},
		"embeddings tokens":              {kind: KindEmbeddings, model: "m", body: `{"model":"m","input":[1,2,3]}`, want: Limits{Prompts: 1}},
		"embeddings of chat messages":    {kind: KindEmbeddings, model: "m", body: `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, want: Limits{Images: 1}},
		"embeddings bad input":           {kind: KindEmbeddings, body: `{"model":"m","input":[1,}`, wantErr: true},
		"chat is ReadFacts":              {kind: KindChat, model: "m", body: `{"model":"m","messages":[],"max_tokens":4}`, want: Limits{MaxTokens: 4}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			f, err := ReadKindFacts(tc.kind, []byte(tc.body), "")
			if tc.wantErr {
				assert.ErrorIs(err, ErrBadRequest)
				return
			}
			require.NoError(t, err)
			assert.Equal(tc.model, f.Model)
			assert.Equal(tc.stream, f.Stream)
			if tc.unbounded != "" {
				assert.Contains(f.Limits.Unbounded, tc.unbounded)
				return
			}
			assert.Equal(tc.want, f.Limits)
		})
	}
}

func TestWithLimitsKinds(t *testing.T) {
	out, err := WithLimits([]byte(`{"model":"m","max_output_tokens":9000,"input":"x","max_tokens":1}`), KindResponses, 100, 3)
	require.NoError(t, err)
	assert.Equal(t, `{"model":"m","input":"x","max_output_tokens":100}`, string(out), "a response has no n")
	f, err := ReadKindFacts(KindResponses, out, "")
	require.NoError(t, err)
	assert.Equal(t, uint64(100), f.Limits.Completion())
	for _, k := range []Kind{KindEmbeddings, KindTranscription} {
		in := []byte(`{"model":"m","input":"x","n":4}`)
		out, err := WithLimits(in, k, 100, 3)
		require.NoError(t, err)
		assert.Equal(t, in, out, "%s generates no choices to limit", k)
	}
}

// form writes a multipart form of fields (name, value) and one file.
func form(t testing.TB, preamble string, fields ...string) ([]byte, string) {
	var buf bytes.Buffer
	buf.WriteString(preamble)
	w := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		require.NoError(t, w.WriteField(fields[i], fields[i+1]))
	}
	fw, err := w.CreateFormFile("file", "a \"quoted\" name.wav")
	require.NoError(t, err)
	_, _ = fw.Write([]byte("RIFF\r\n--not-the-boundary\r\n\x00\xff"))
	require.NoError(t, w.Close())
	return buf.Bytes(), w.FormDataContentType()
}

func TestParseForm(t *testing.T) {
	assert := assert.New(t)
	body, ctype := form(t, "a preamble\r\n", "model", "other", "stream", "false", "model", "whisper", "timestamp_granularities[]", "word", "timestamp_granularities[]", "segment")
	_, err := ParseForm(body, "")
	assert.ErrorIs(err, ErrBadRequest, "with a preamble, the boundary is not on the first line")
	f, err := ParseForm(body, ctype)
	require.NoError(t, err)
	facts, err := f.Facts()
	require.NoError(t, err)
	assert.Equal("whisper", facts.Model, "the last of repeated fields, as the engine's form parser keeps")
	assert.True(facts.HasStream)
	assert.False(facts.Stream)
	file := f.File("file")
	require.NotNil(t, file)
	assert.Equal(`a "quoted" name.wav`, file.FileName)
	assert.Equal([]byte("RIFF\r\n--not-the-boundary\r\n\x00\xff"), file.Data)

	// Written again, the form reads back the same, its boundary on its first line.
	out, outType := f.Encode()
	again, err := ParseForm(out, "")
	require.NoError(t, err)
	assert.Equal(f, again)
	typed, err := ParseForm(out, outType)
	require.NoError(t, err)
	assert.Equal(f, typed)

	for name, in := range map[string][2]string{
		"not multipart":      {"x", "application/json"},
		"no boundary":        {"x", "multipart/form-data"},
		"truncated":          {string(body[:len(body)-10]), ctype},
		"no name":            {"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n", ""},
		"quoted-printable":   {"--b\r\nContent-Disposition: form-data; name=\"model\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nm=3D\r\n--b--\r\n", ""},
		"stream not boolean": {"--b\r\nContent-Disposition: form-data; name=\"stream\"\r\n\r\nyes\r\n--b--\r\n", ""},
		"empty first line":   {"\r\n--b\r\n", ""},
	} {
		f, err := ParseForm([]byte(in[0]), in[1])
		if err == nil {
			_, err = f.Facts()
		}
		assert.ErrorIs(err, ErrBadRequest, name)
	}
}

// FuzzParseForm: the form parser never panics on untrusted bytes, and what it accepts it writes
// again into a form that reads back the same.
func FuzzParseForm(f *testing.F) {
	body, _ := form(f, "", "model", "m", "stream", "true")
	f.Add(body)
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--b--\r\n"))
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"file\"; filename*=utf-8''%E2%82%AC.wav\r\n\r\n\x00\r\n--b--"))
	f.Fuzz(func(t *testing.T, in []byte) {
		form, err := ParseForm(in, "")
		if err != nil {
			return
		}
		out, _ := form.Encode()
		again, err := ParseForm(out, "")
		if err != nil {
			t.Fatalf("Encode wrote a form that does not parse: %v\n%q", err, out)
		}
		if len(again.Parts) != len(form.Parts) {
			t.Fatalf("%d parts read back as %d", len(form.Parts), len(again.Parts))
		}
		for i := range form.Parts {
			a, b := form.Parts[i], again.Parts[i]
			if a.Name != b.Name || a.FileName != b.FileName || !bytes.Equal(a.Data, b.Data) {
				t.Fatalf("part %d %+v read back as %+v", i, a, b)
			}
		}
	})
}

// FuzzReadKindFacts: the Responses and embeddings readers never panic, and a body they accept is
// a JSON object.
func FuzzReadKindFacts(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","input":[{"role":"user","content":[{"type":"input_image"},{"type":"input_text","text":"x"}]}],"max_output_tokens":5}`,
		`{"model":"m","input":["a",[1,2]],"messages":[{"content":[{"type":"image_url"}]}]}`,
		`{"tools":[{"type":"mcp"}],"input":[{"type":"function_call_output","output":[{"type":"x"}]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, k := range []Kind{KindResponses, KindEmbeddings} {
			if _, err := ReadKindFacts(k, in, ""); err == nil {
				var top map[string]json.RawMessage
				if json.Unmarshal(in, &top) != nil {
					t.Fatalf("%s accepted %q, which is no object", k, in)
				}
			}
		}
	})
}

// FuzzResponsesEvent: the Responses stream event reader never panics, and finds the usage of a
// last event as a plain exact-key decoder does.
func FuzzResponsesEvent(f *testing.F) {
	f.Add([]byte(`{"type":"response.completed","response":{"usage":{"input_tokens":1,"output_tokens":2}}}`))
	f.Add([]byte(`{"type":"response.output_text.delta","delta":"\"usage\" response."}`))
	f.Add([]byte(`{"type":"response.failed","response":{"usage":null}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		u, ok, terminal, err := responsesEvent(in)
		if err != nil || !ok {
			return
		}
		if !terminal {
			t.Fatalf("usage %+v from an event that is not the last", u)
		}
		var ev struct {
			Type     string `json:"type"`
			Response struct {
				Usage *usageJSON `json:"usage"`
			} `json:"response"`
		}
		if json.Unmarshal(in, &ev) != nil || ev.Response.Usage == nil {
			return // escaped or case-variant keys: the exact-key reader may differ from encoding/json
		}
		if want, _, _ := ev.Response.Usage.usage(); want != u && bytes.Equal(bytes.ToLower(in), in) {
			t.Fatalf("read %+v, a decoder reads %+v from %q", u, want, in)
		}
	})
}

// FuzzTranscriptionEvent: the streamed transcription reader never panics; only an event with
// usage is a usage chunk or the last event, and never both.
func FuzzTranscriptionEvent(f *testing.F) {
	f.Add([]byte(`{"object":"transcription.chunk","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}`))
	f.Add([]byte(`{"type":"transcript.text.done","text":"x","usage":{"type":"tokens","input_tokens":3,"output_tokens":1}}`))
	f.Add([]byte(`{"type":"transcript.text.delta","delta":"\"usage\""}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		_, ok, usageChunk, terminal, err := transcriptionEvent(in)
		if (usageChunk || terminal) && (!ok || err != nil) {
			t.Fatalf("usage chunk %v, last %v without usage (ok %v, err %v): %q", usageChunk, terminal, ok, err, in)
		}
		if usageChunk && terminal {
			t.Fatalf("both a usage chunk and the last event: %q", in)
		}
	})
}
