package client

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestWithCost(t *testing.T) {
	testCases := map[string]struct {
		in, want string
		cost     uint64
	}{
		"usage object":      {in: `{"a":1,"usage":{"prompt_tokens":3}}`, cost: 5, want: `{"a":1,"usage":{"prompt_tokens":3,"total_cost":5}}`},
		"empty usage":       {in: `{"usage":{}}`, cost: 5, want: `{"usage":{"total_cost":5}}`},
		"usage then more":   {in: `{"usage":{"x":1} , "b":[1,{"usage":{}}]}`, cost: 7, want: `{"usage":{"x":1,"total_cost":7} , "b":[1,{"usage":{}}]}`},
		"spaces":            {in: `{ "usage" : { "x" : 1 } }`, cost: 9, want: `{ "usage" : { "x" : 1 ,"total_cost":9} }`},
		"null usage":        {in: `{"usage":null}`, cost: 5, want: `{"usage":null}`},
		"no usage":          {in: `{"choices":[]}`, cost: 5, want: `{"choices":[]}`},
		"nested usage only": {in: `{"x":{"usage":{}}}`, cost: 5, want: `{"x":{"usage":{}}}`},
		"zero cost":         {in: `{"usage":{}}`, cost: 0, want: `{"usage":{}}`},
		"not JSON":          {in: `nope`, cost: 5, want: `nope`},
		"array":             {in: `[{"usage":{}}]`, cost: 5, want: `[{"usage":{}}]`},
		"truncated":         {in: `{"usage":{"x":`, cost: 5, want: `{"usage":{"x":`},
		"escaped key":       {in: `{"us\u0061ge":{}}`, cost: 5, want: `{"us\u0061ge":{"total_cost":5}}`},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, string(withCost([]byte(tc.in), tc.cost)))
		})
	}
}

// FuzzWithCost: the cost is spliced in without disturbing any other byte, and valid JSON stays valid.
func FuzzWithCost(f *testing.F) {
	for _, s := range []string{`{"usage":{"a":1}}`, `{"usage":{}}`, `{"usage":null}`, `{"a":"}","usage":{"b":"{"}}`,
		chunkUsage, chunkHello, `{ "usage" : { } }`} {
		f.Add([]byte(s), uint64(1234))
	}
	f.Fuzz(func(t *testing.T, in []byte, cost uint64) {
		out := withCost(in, cost)
		if bytes.Equal(out, in) {
			return
		}
		if !json.Valid(in) {
			t.Fatalf("changed invalid JSON %q", in)
		}
		if !json.Valid(out) {
			t.Fatalf("produced invalid JSON %q from %q", out, in)
		}
		var top struct {
			Usage struct {
				TotalCost json.Number `json:"total_cost"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(out, &top); err != nil {
			t.Fatal(err)
		}
		// The input may already carry a total_cost; ours is the last and wins, as for every parser.
		if top.Usage.TotalCost.String() != strconv.FormatUint(cost, 10) {
			t.Fatalf("total_cost %s, want %d in %q", top.Usage.TotalCost, cost, out)
		}
		if len(out) <= len(in) {
			t.Fatalf("nothing inserted: %q", out)
		}
	})
}

// FuzzParseRequest: validation never panics, and what it accepts has what the client relies on.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{chatBody, `{"model":"m","prompt":"x"}`, `{"model":"m","messages":[],"stream_options":{"include_usage":true}}`,
		`{"model":1}`, `[]`, `null`, `{"model":"m","stream":null,"messages":[]}`} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, chat bool) {
		k := kindCompletion
		if chat {
			k = kindChat
		}
		req, err := parseRequest(k, body)
		if err != nil {
			if err.status != 400 || err.msg == "" {
				t.Fatalf("bad error %+v", err)
			}
			return
		}
		if req.model == "" || !json.Valid(body) {
			t.Fatalf("accepted %q as %+v", body, req)
		}
	})
}
