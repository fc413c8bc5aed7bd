package gpu

import (
	"encoding/json"
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
			assert := assert.New(t)
			f, err := ReadFacts([]byte(tc.in))
			if tc.wantErr {
				assert.ErrorIs(err, ErrBadRequest)
				return
			}
			assert.NoError(err)
			assert.Equal(tc.want, f)
		})
	}
}
