package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// DefaultClientURL is where Ask finds the client API unless told otherwise.
const DefaultClientURL = "http://127.0.0.1:8080"

// maxPromptBytes bounds a prompt read from stdin.
const maxPromptBytes = 4 << 20

// AskOptions configures Ask, the `cocoon ask` command.
type AskOptions struct {
	ClientURL string // the client API, http(s)://HOST:PORT or HOST:PORT; empty: DefaultClientURL
	Model     string // empty: the first model of /v1/models
	System    string // optional system message
	MaxTokens int    // 0: the engine's default
	JSON      bool   // print the raw final JSON answer instead of streaming text
	Prompt    string // the question (`cocoon ask` joins its arguments with spaces); "-" reads it from stdin
	APIToken  string // the client's API token, if it requires one
}

// Ask sends one chat completion to a running client and writes the answer's text to stdout as it
// arrives, and the tool calls it makes, then a summary to stderr: model, worker image (marked when
// its attestation is simulated), token counts and cost. Any failure is returned as a one-line
// error with the reason.
func Ask(ctx context.Context, o AskOptions, stdin io.Reader, stdout, stderr io.Writer) error {
	base, err := ParseClientURL(o.ClientURL)
	if err != nil {
		return fmt.Errorf("ask: %w", err)
	}
	prompt := o.Prompt
	if prompt == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, maxPromptBytes+1))
		if err != nil {
			return fmt.Errorf("ask: read prompt from stdin: %w", err)
		}
		if len(b) > maxPromptBytes {
			return fmt.Errorf("ask: prompt on stdin is over %d bytes", maxPromptBytes)
		}
		prompt = string(b)
	}
	if strings.TrimSpace(prompt) == "" {
		return errors.New("ask: empty prompt")
	}
	// A transport of our own, closed on return: a one-shot command leaves no idle connection behind.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	a := asker{base: base, token: o.APIToken, hc: &http.Client{Transport: tr}}
	model := o.Model
	if model == "" {
		var err error
		if model, err = a.firstModel(ctx); err != nil {
			return err
		}
	}

	type message struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	req := struct {
		Model         string    `json:"model"`
		Messages      []message `json:"messages"`
		MaxTokens     int       `json:"max_tokens,omitempty"`
		Stream        bool      `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options,omitempty"`
	}{Model: model, MaxTokens: o.MaxTokens, Stream: !o.JSON}
	if o.System != "" {
		req.Messages = append(req.Messages, message{"system", o.System})
	}
	req.Messages = append(req.Messages, message{"user", prompt})
	if !o.JSON {
		req.StreamOptions = &struct {
			IncludeUsage bool `json:"include_usage"`
		}{true}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("ask: encode request: %w", err)
	}
	resp, err := a.do(ctx, http.MethodPost, "/v1/chat/completions", body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()

	var sum answerSummary
	if o.JSON {
		sum, err = copyJSON(resp.Body, stdout)
	} else {
		sum, err = streamText(resp.Body, stdout)
	}
	if err != nil {
		return err
	}
	// The model the proxy routed to is authoritative; the engine's own name is a fallback.
	if m := resp.Header.Get("X-Cocoon-Model"); m != "" {
		sum.model = m
	}
	sum.print(stderr, resp.Header)
	return nil
}

// ParseClientURL reads the address of a client API: http(s)://HOST:PORT, or HOST:PORT for
// http://HOST:PORT, optionally with a path it is served under; a trailing /v1 (an OpenAI base URL)
// is dropped. Empty is DefaultClientURL. The result has no trailing slash.
func ParseClientURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return DefaultClientURL, nil
	}
	raw := s
	if !strings.Contains(s, "://") {
		raw = "http://" + s
	}
	want := "want http://HOST:PORT or HOST:PORT, e.g. " + strings.TrimPrefix(DefaultClientURL, "http://")
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("client URL %q: %v; %s", s, err, want)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("client URL %q: scheme %q is not http or https; %s", s, u.Scheme, want)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("client URL %q: no host; %s", s, want)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("client URL %q: no user, query or fragment is allowed; %s", s, want)
	}
	u.Path = strings.TrimSuffix(strings.TrimRight(u.Path, "/"), "/v1")
	u.RawPath = ""
	return strings.TrimRight(u.String(), "/"), nil
}

// asker talks to the client API.
type asker struct {
	base  string
	token string
	hc    *http.Client
}

// do sends a request and turns any non-200 answer into the API's own error message.
func (a asker) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, r)
	if err != nil {
		return nil, fmt.Errorf("ask: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ask: %w", ctx.Err())
		}
		return nil, fmt.Errorf("ask: cannot reach the client at %s (is cocoon client or cocoon demo running there? --client says where): %w", a.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("ask: %s (HTTP %d)", errorMessage(b, resp.Status), resp.StatusCode)
	}
	return resp, nil
}

// errorMessage extracts the message of an OpenAI error body, on one line.
func errorMessage(b []byte, fallback string) string {
	var e struct {
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	msg := fallback
	if json.Unmarshal(b, &e) == nil && e.Error != nil && e.Error.Message != "" {
		msg = e.Error.Message
	} else if t := strings.TrimSpace(string(b)); t != "" && len(t) < 300 {
		msg = t
	}
	return strings.Join(strings.Fields(msg), " ")
}

func (a asker) firstModel(ctx context.Context) (string, error) {
	resp, err := a.do(ctx, http.MethodGet, "/v1/models", nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&list); err != nil {
		return "", fmt.Errorf("ask: read model list: %w", err)
	}
	if len(list.Data) == 0 || list.Data[0].ID == "" {
		return "", errors.New("ask: no model is available: no worker serves any model on the connected proxies")
	}
	return list.Data[0].ID, nil
}

// usageJSON is OpenAI's usage object, with the total_cost the client adds.
type usageJSON struct {
	PromptTokens        uint64 `json:"prompt_tokens"`
	CompletionTokens    uint64 `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens uint64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens uint64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
	TotalCost *uint64 `json:"total_cost"`
}

type answerSummary struct {
	model string
	usage *usageJSON
}

func (s answerSummary) print(w io.Writer, h http.Header) {
	if s.model != "" {
		fmt.Fprintf(w, "model:  %s\n", s.model)
	}
	if img := h.Get("X-Cocoon-Worker-Image"); img != "" {
		mark := ""
		if h.Get("X-Cocoon-Attestation") == "simulated" {
			mark = " (simulated)"
		}
		fmt.Fprintf(w, "worker: %s%s\n", img, mark)
	}
	if u := s.usage; u != nil {
		var cached, reasoning uint64
		if u.PromptTokensDetails != nil {
			cached = u.PromptTokensDetails.CachedTokens
		}
		if u.CompletionTokensDetails != nil {
			reasoning = u.CompletionTokensDetails.ReasoningTokens
		}
		fmt.Fprintf(w, "tokens: prompt %d, cached %d, completion %d, reasoning %d\n",
			u.PromptTokens, cached, u.CompletionTokens, reasoning)
		if u.TotalCost != nil {
			fmt.Fprintf(w, "cost:   %d nanoTON\n", *u.TotalCost)
		}
	}
	if r := h.Get("X-Cocoon-Receipt"); r != "" {
		fmt.Fprintf(w, "sealed: end to end; the worker's signed receipt is at %s (cocoon receipt verify)\n", r)
	}
}

// toolCall is a tool call of a streamed answer, put together from its deltas.
type toolCall struct {
	choice, index   int
	name, arguments string
}

// toolCallDelta is one piece of a tool call in a chat stream's delta.
type toolCallDelta struct {
	Index    int `json:"index"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// printToolCalls writes each tool call on a line of its own: "tool call: name(arguments)".
func printToolCalls(out io.Writer, calls []*toolCall) error {
	for _, c := range calls {
		if _, err := fmt.Fprintf(out, "tool call: %s(%s)\n", c.name, strings.TrimSpace(c.arguments)); err != nil {
			return fmt.Errorf("ask: write answer: %w", err)
		}
	}
	return nil
}

// streamText reads an SSE chat stream, writing each delta's text as soon as it arrives, and the
// tool calls, which arrive in pieces, once the answer is complete.
func streamText(r io.Reader, out io.Writer) (answerSummary, error) {
	var sum answerSummary
	var calls []*toolCall
	br := bufio.NewReaderSize(r, 64<<10)
	var data []byte
	lastNL := true
	wrote := false
	for {
		line, err := br.ReadBytes('\n')
		if err != nil && (len(line) == 0 || !errors.Is(err, io.EOF)) {
			if errors.Is(err, io.EOF) {
				return sum, errors.New("ask: the answer ended early (the stream was cut before [DONE])")
			}
			return sum, fmt.Errorf("ask: read answer: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) > 0 {
			if v, ok := bytes.CutPrefix(line, []byte("data:")); ok {
				if len(data) > 0 {
					data = append(data, '\n')
				}
				data = append(data, bytes.TrimPrefix(v, []byte(" "))...)
			}
			continue // comments and other fields are ignored
		}
		if len(data) == 0 {
			continue
		}
		event := data
		data = nil
		if string(event) == "[DONE]" {
			if wrote && !lastNL {
				_, _ = io.WriteString(out, "\n")
			}
			return sum, printToolCalls(out, calls)
		}
		var c struct {
			Model   string `json:"model"`
			Choices []struct {
				Index int `json:"index"`
				Delta struct {
					Content   string          `json:"content"`
					ToolCalls []toolCallDelta `json:"tool_calls"`
				} `json:"delta"`
				Text string `json:"text"`
			} `json:"choices"`
			Usage *usageJSON `json:"usage"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(event, &c); err != nil {
			return sum, fmt.Errorf("ask: malformed event in the answer: %w", err)
		}
		if c.Error != nil {
			if wrote && !lastNL {
				_, _ = io.WriteString(out, "\n")
			}
			return sum, fmt.Errorf("ask: the answer failed midway: %s", strings.Join(strings.Fields(c.Error.Message), " "))
		}
		if c.Model != "" {
			sum.model = c.Model
		}
		if c.Usage != nil {
			sum.usage = c.Usage
		}
		for _, ch := range c.Choices {
			for _, d := range ch.Delta.ToolCalls {
				i := slices.IndexFunc(calls, func(tc *toolCall) bool { return tc.choice == ch.Index && tc.index == d.Index })
				if i < 0 {
					calls = append(calls, &toolCall{choice: ch.Index, index: d.Index})
					i = len(calls) - 1
				}
				calls[i].name += d.Function.Name
				calls[i].arguments += d.Function.Arguments
			}
			text := ch.Delta.Content + ch.Text
			if text == "" {
				continue
			}
			if _, err := io.WriteString(out, text); err != nil {
				return sum, fmt.Errorf("ask: write answer: %w", err)
			}
			wrote, lastNL = true, strings.HasSuffix(text, "\n")
		}
	}
}

// copyJSON writes a non-streamed answer as it came and reads its usage for the summary.
func copyJSON(r io.Reader, out io.Writer) (answerSummary, error) {
	var sum answerSummary
	b, err := io.ReadAll(r)
	if err != nil {
		return sum, fmt.Errorf("ask: read answer: %w", err)
	}
	var a struct {
		Model string     `json:"model"`
		Usage *usageJSON `json:"usage"`
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return sum, fmt.Errorf("ask: malformed answer: %w", err)
	}
	sum.model, sum.usage = a.Model, a.Usage
	if !bytes.HasSuffix(b, []byte("\n")) {
		b = append(b, '\n')
	}
	if _, err := out.Write(b); err != nil {
		return sum, fmt.Errorf("ask: write answer: %w", err)
	}
	return sum, nil
}
