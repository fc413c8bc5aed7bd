package gpu

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestWithIncludeUsage(t *testing.T) {
	testCases := map[string]struct {
		in        string
		want      string
		wantAsked bool
		wantErr   error
	}{
		"added at the end": {
			in:   `{"model":"m","stream":true,"messages":[{"role":"user","content":"}"}]}`,
			want: `{"model":"m","stream":true,"messages":[{"role":"user","content":"}"}],"stream_options":{"include_usage":true}}`,
		},
		"whitespace kept": {
			in:   "{\n  \"stream\": true\n}\n",
			want: "{\n  \"stream\": true\n,\"stream_options\":{\"include_usage\":true}}\n",
		},
		"empty object": {
			in:   `{}`,
			want: `{"stream_options":{"include_usage":true}}`,
		},
		"merged into stream_options": {
			in:   `{"stream":true,"stream_options":{"continuous_usage_stats":true},"seed":1}`,
			want: `{"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true},"seed":1}`,
		},
		"empty stream_options": {
			in:   `{"stream_options": { },"n":1}`,
			want: `{"stream_options": {"include_usage":true },"n":1}`,
		},
		"include_usage false": {
			in:   `{"stream_options":{"include_usage":false,"x":1}}`,
			want: `{"stream_options":{"include_usage":true,"x":1}}`,
		},
		"already asked": {
			in:        `{"stream_options":{"include_usage":true},"user":"u"}`,
			want:      `{"stream_options":{"include_usage":true},"user":"u"}`,
			wantAsked: true,
		},
		"null stream_options": {
			in:   `{"stream_options":null,"user":"u"}`,
			want: `{"stream_options":{"include_usage":true},"user":"u"}`,
		},
		"duplicate key, last wins": {
			in:   `{"stream_options":{"include_usage":true},"stream_options":{}}`,
			want: `{"stream_options":{"include_usage":true},"stream_options":{"include_usage":true}}`,
		},
		"nested stream_options untouched": {
			in:   `{"metadata":{"stream_options":{}}}`,
			want: `{"metadata":{"stream_options":{}},"stream_options":{"include_usage":true}}`,
		},
		"escaped key": {
			in:   `{"stream\u005foptions":{"include_usage":false}}`,
			want: `{"stream\u005foptions":{"include_usage":true}}`,
		},
		"not an object":           {in: `[1]`, wantErr: ErrBadRequest},
		"not json":                {in: `{"a":`, wantErr: ErrBadRequest},
		"trailing data":           {in: `{} {}`, wantErr: ErrBadRequest},
		"stream_options a string": {in: `{"stream_options":"x"}`, wantErr: ErrBadRequest},
		"empty":                   {in: ``, wantErr: ErrBadRequest},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			out, asked, err := withIncludeUsage([]byte(tc.in))
			if tc.wantErr != nil {
				assert.ErrorIs(err, tc.wantErr)
				return
			}
			assert.NoError(err)
			assert.Equal(tc.want, string(out))
			assert.Equal(tc.wantAsked, asked)
			assert.True(json.Valid(out))
		})
	}
}

func FuzzWithIncludeUsage(f *testing.F) {
	f.Add([]byte(`{"model":"m","stream":true,"stream_options":{"include_usage":false}}`))
	f.Add([]byte(`{"stream_options":null}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, _, err := withIncludeUsage(in)
		if err != nil {
			return
		}
		// Engines' JSON parsers match keys exactly (encoding/json would not),
		// and the last of duplicate keys wins in both.
		var top, so map[string]json.RawMessage
		if err := json.Unmarshal(out, &top); err != nil {
			t.Fatalf("output %q is not valid: %v", out, err)
		}
		if err := json.Unmarshal(top["stream_options"], &so); err != nil || string(so["include_usage"]) != "true" {
			t.Fatalf("include_usage not set in %q", out)
		}
	})
}

// FuzzScanObject checks the quick object scan against encoding/json on valid
// JSON.
func FuzzScanObject(f *testing.F) {
	f.Add([]byte(`{"model":"m","stream_options":{"include_usage":false},"stream_options":null}`))
	f.Add([]byte(`{"a":[1,{"b":"\"}"}],"stream_options":-1.5e3,"c":true}`))
	f.Add([]byte(` { } `))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, n, err := scanObject(in, "stream_options")
		if !json.Valid(in) {
			return
		}
		ms, ns, errs := scanObjectSlow(in, "stream_options")
		if (err == nil) != (errs == nil) || m != ms || n != ns {
			t.Fatalf("quick %+v %d %v, slow %+v %d %v", m, n, err, ms, ns, errs)
		}
	})
}

func TestReadFacts(t *testing.T) {
	testCases := map[string]struct {
		in      string
		want    Facts
		wantErr bool
	}{
		"model and stream":         {in: `{"model":"m","stream":true}`, want: Facts{Model: "m", HasModel: true, Stream: true, HasStream: true}},
		"stream false":             {in: `{"model":"m","stream":false}`, want: Facts{Model: "m", HasModel: true, HasStream: true}},
		"absent":                   {in: `{"messages":[]}`},
		"nulls":                    {in: `{"model":null,"stream":null}`},
		"last duplicate wins":      {in: `{"model":"a","stream":true,"model":"b","stream":false}`, want: Facts{Model: "b", HasModel: true, HasStream: true}},
		"keys are case-sensitive":  {in: `{"MODEL":"a","Stream":true,"model":"m"}`, want: Facts{Model: "m", HasModel: true}},
		"escaped key":              {in: `{"model":"a","mod\u0065l":"b"}`, want: Facts{Model: "b", HasModel: true}},
		"escaped value":            {in: `{"model":"\u0062"}`, want: Facts{Model: "b", HasModel: true}},
		"nested keys do not count": {in: `{"model":"m","x":{"model":"n","stream":true}}`, want: Facts{Model: "m", HasModel: true}},
		"model not a string":       {in: `{"model":1}`, wantErr: true},
		"stream not a boolean":     {in: `{"model":"m","stream":"true"}`, wantErr: true},
		"stream a number":          {in: `{"model":"m","stream":1}`, wantErr: true},
		"not an object":            {in: `["model"]`, wantErr: true},
		"null body":                {in: `null`, wantErr: true},
		"malformed":                {in: `{"model":"m"`, wantErr: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			if f, ok := readFacts(t, tc.in, tc.wantErr); ok {
				assert.Equal(t, tc.want, f)
			}
		})
	}
}

// readFacts reads in, expecting an ErrBadRequest when wantErr; ok says whether facts were read.
func readFacts(t *testing.T, in string, wantErr bool) (Facts, bool) {
	t.Helper()
	f, err := ReadFacts([]byte(in))
	if wantErr {
		assert.ErrorIs(t, err, ErrBadRequest)
		return f, false
	}
	return f, assert.NoError(t, err)
}

// The limits are read as an engine reads them: exact keys, the last duplicate winning; what a
// relay cannot foresee the engine's reading of is refused.
func TestReadLimits(t *testing.T) {
	testCases := map[string]struct {
		in      string
		want    Limits
		wantErr bool
	}{
		"none":                       {in: `{"messages":[{"role":"user","content":"hi"}]}`},
		"max_tokens":                 {in: `{"max_tokens":2000}`, want: Limits{MaxTokens: 2000}},
		"case variant ignored":       {in: `{"MAX_TOKENS":1,"max_tokens":2000}`, want: Limits{MaxTokens: 2000}},
		"case variant alone ignored": {in: `{"Max_Tokens":1}`},
		"last duplicate wins":        {in: `{"max_tokens":1,"max_tokens":2000}`, want: Limits{MaxTokens: 2000}},
		"escaped key":                {in: `{"max_tokens":1,"max\u005ftokens":2000}`, want: Limits{MaxTokens: 2000}},
		"both limits": {in: `{"max_tokens":10,"max_completion_tokens":300}`,
			want: Limits{MaxTokens: 10, MaxCompletionTokens: 300}},
		"n and best_of":      {in: `{"n":8,"N":1,"best_of":3}`, want: Limits{N: 8, BestOf: 3}},
		"nulls":              {in: `{"max_tokens":null,"n":null,"prompt":null,"messages":null}`},
		"nested ignored":     {in: `{"x":{"max_tokens":9,"n":9}}`},
		"prompt string":      {in: `{"prompt":"a"}`, want: Limits{Prompts: 1}},
		"prompt list":        {in: `{"prompt":["a","b","c"]}`, want: Limits{Prompts: 3}},
		"prompt tokens":      {in: `{"prompt":[1,2,3]}`, want: Limits{Prompts: 1}},
		"prompt token lists": {in: `{"prompt":[[1,2],[3],[4]]}`, want: Limits{Prompts: 3}},
		"prompt empty list":  {in: `{"prompt":[]}`, want: Limits{Prompts: 1}},
		"images": {in: `{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}}]},` +
			`{"role":"user","content":[{"type":"image_url","image_url":{"url":"y"}}]}]}`, want: Limits{Images: 2}},
		"TYPE is not type":       {in: `{"messages":[{"content":[{"TYPE":"text","type":"image_url"}]}]}`, want: Limits{Images: 1}},
		"text part without type": {in: `{"messages":[{"content":[{"text":"a"}]}]}`},
		"audio": {in: `{"messages":[{"content":[{"type":"input_audio","input_audio":{}}]}]}`,
			want: Limits{Unbounded: `message content of type "input_audio"`}},
		"untyped media": {in: `{"messages":[{"content":[{"image_url":{"url":"x"}}]}]}`,
			want: Limits{Unbounded: "a message content part has no type"}},
		"deep nesting": {in: `{"n":2,"messages":[{"content":[{"type":"image_url","x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}]}]}`,
			want: Limits{N: 2, Images: 1}},
		"string limit":   {in: `{"max_tokens":"2000"}`, wantErr: true},
		"float limit":    {in: `{"max_tokens":2000.0}`, wantErr: true},
		"exponent limit": {in: `{"max_tokens":2e3}`, wantErr: true},
		"negative n":     {in: `{"n":-1}`, wantErr: true},
		"boolean n":      {in: `{"n":true}`, wantErr: true},
		"huge limit":     {in: `{"max_tokens":18446744073709551616}`, wantErr: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			if f, ok := readFacts(t, tc.in, tc.wantErr); ok {
				assert.Equal(t, tc.want, f.Limits)
			}
		})
	}
}

func TestLimitsBounds(t *testing.T) {
	assert := assert.New(t)
	assert.Equal(uint64(0), Limits{}.Completion())
	assert.Equal(uint64(300), Limits{MaxTokens: 10, MaxCompletionTokens: 300}.Completion())
	assert.Equal(uint64(1), Limits{}.Choices())
	assert.Equal(uint64(8), Limits{N: 8, BestOf: 3}.Choices())
	assert.Equal(uint64(5), Limits{N: 2, BestOf: 5}.Choices())
}

func TestWithLimits(t *testing.T) {
	testCases := map[string]struct {
		in   string
		kind Kind
		want string
	}{
		"set when absent": {in: `{"model":"m","messages":[]}`, kind: KindChat,
			want: `{"model":"m","messages":[],"max_tokens":100,"max_completion_tokens":100,"n":2}`},
		"replaced, duplicates and aliases dropped": {in: `{"max_tokens":1,"model":"m","n":8,"max_tokens":9000,"n_predict":-1}`, kind: KindChat,
			want: `{"model":"m","max_tokens":100,"max_completion_tokens":100,"n":2}`},
		"completion sets max_tokens only": {in: `{"prompt":"a","max_tokens":5}`, kind: KindCompletion,
			want: `{"prompt":"a","max_tokens":100,"n":2}`},
		"case variants kept, engines ignore them": {in: `{"MAX_TOKENS":1}`, kind: KindCompletion,
			want: `{"MAX_TOKENS":1,"max_tokens":100,"n":2}`},
		"empty object": {in: ` { } `, kind: KindCompletion, want: `{"max_tokens":100,"n":2}`},
		"escaped keys": {in: `{"max\u005ftokens":9000,"mod\u0065l":"m","x":[1, 2]}`, kind: KindCompletion,
			want: `{"model":"m","x":[1, 2],"max_tokens":100,"n":2}`},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			out, err := WithLimits([]byte(tc.in), tc.kind, 100, 2)
			assert.NoError(err)
			assert.Equal(tc.want, string(out))
			f, err := ReadFacts(out)
			assert.NoError(err)
			assert.Equal(uint64(100), f.Limits.MaxTokens)
			assert.Equal(uint64(2), f.Limits.N)
		})
	}
	_, err := WithLimits([]byte(`[1]`), KindChat, 1, 1)
	assert.ErrorIs(t, err, ErrBadRequest)
	_, err = WithLimits([]byte(`{"a":`), KindChat, 1, 1)
	assert.ErrorIs(t, err, ErrBadRequest)
}

// FuzzReadLimits: the limit reader never panics, reads what an exact-key decoder reads, allocates
// in proportion to its input at most, and WithLimits always yields a body that reads back with the
// limits it set.
func FuzzReadLimits(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","max_tokens":2000,"MAX_TOKENS":1,"n":8}`,
		`{"prompt":[[1,2],[3]],"best_of":2,"max_completion_tokens":5}`,
		`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}},{"text":"a"}]}]}`,
		`{"max\u005ftokens":3,"n":1,"n":2}`,
		`{"messages":[{"content":[{"type":"input_audio"}]}],"x":[[[[[]]]]]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		fa, err := ReadFacts(in)
		runtime.ReadMemStats(&after)
		if grown := after.TotalAlloc - before.TotalAlloc; grown > uint64(64*len(in)+1<<16) {
			t.Fatalf("ReadFacts allocated %d bytes for %d bytes of input", grown, len(in))
		}
		if err != nil {
			return
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(in, &top); err != nil {
			t.Fatalf("accepted %q, which is no object: %v", in, err)
		}
		for key, got := range map[string]uint64{"max_tokens": fa.Limits.MaxTokens, "max_completion_tokens": fa.Limits.MaxCompletionTokens, "n": fa.Limits.N} {
			var want uint64
			_ = json.Unmarshal(top[key], &want)
			if got != want {
				t.Fatalf("%s: read %d, an exact-key decoder reads %d in %q", key, got, want, in)
			}
		}
		out, err := WithLimits(in, KindChat, 7, 3)
		if err != nil {
			t.Fatalf("WithLimits refused %q: %v", in, err)
		}
		fo, err := ReadFacts(out)
		if err != nil || fo.Limits.MaxTokens != 7 || fo.Limits.MaxCompletionTokens != 7 || fo.Limits.N != 3 {
			t.Fatalf("WithLimits(%q) = %q reads %+v, %v", in, out, fo.Limits, err)
		}
	})
}
