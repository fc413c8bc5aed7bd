package gpu

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
)

// maxFormParts bounds the parts of a form: a transcription has a file and a few fields.
const maxFormParts = 64

// Form is a multipart/form-data body (a transcription request), parsed once. Encode writes it
// again in one canonical shape, so the engine reads exactly the parts read here, whatever quirks
// the original had (a preamble, quoted-printable parts, odd header spellings).
type Form struct {
	Parts []FormPart
}

// FormPart is one part: a field (FileName "") or a file.
type FormPart struct {
	Name, FileName, ContentType string
	Data                        []byte
}

// ParseForm parses a multipart/form-data body. contentType is the body's media type with its
// boundary; "" takes the boundary from the body's first line ("--boundary"), which is where a
// form without a preamble, as Encode writes it, names it. A malformed form is an ErrBadRequest.
func ParseForm(body []byte, contentType string) (*Form, error) {
	boundary, err := formBoundary(body, contentType)
	if err != nil {
		return nil, err
	}
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	f := &Form{}
	for {
		p, err := r.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: multipart form: %w", ErrBadRequest, err)
		}
		if len(f.Parts) == maxFormParts {
			return nil, fmt.Errorf("%w: multipart form has more than %d parts", ErrBadRequest, maxFormParts)
		}
		disp, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		if err != nil || disp != "form-data" || params["name"] == "" || mime.FormatMediaType(disp, params) == "" {
			return nil, fmt.Errorf("%w: multipart form: a part has no valid form-data name", ErrBadRequest)
		}
		if cte := p.Header.Get("Content-Transfer-Encoding"); cte != "" && !strings.EqualFold(cte, "binary") && !strings.EqualFold(cte, "8bit") {
			// Engines' form parsers do not decode transfer encodings either.
			return nil, fmt.Errorf("%w: multipart form: Content-Transfer-Encoding %q is not supported", ErrBadRequest, cte)
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return nil, fmt.Errorf("%w: multipart form: %w", ErrBadRequest, err)
		}
		f.Parts = append(f.Parts, FormPart{Name: params["name"], FileName: params["filename"], ContentType: p.Header.Get("Content-Type"), Data: data})
	}
	if len(f.Parts) == 0 {
		return nil, fmt.Errorf("%w: multipart form has no parts", ErrBadRequest)
	}
	return f, nil
}

// formBoundary is the boundary of a multipart/form-data body.
func formBoundary(body []byte, contentType string) (string, error) {
	if contentType == "" {
		line, _, _ := bytes.Cut(body, []byte("\r\n"))
		if !bytes.HasPrefix(line, []byte("--")) || len(line) < 3 || len(line) > 72 {
			return "", fmt.Errorf("%w: multipart form: no boundary on its first line", ErrBadRequest)
		}
		return string(line[2:]), nil
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return "", fmt.Errorf("%w: content type %q is not multipart/form-data with a boundary", ErrBadRequest, contentType)
	}
	return params["boundary"], nil
}

// Value is the last field named name (the one an engine's form parser keeps) and whether there is
// one. Files are not fields.
func (f *Form) Value(name string) (string, bool) {
	for i := len(f.Parts) - 1; i >= 0; i-- {
		if p := f.Parts[i]; p.Name == name && p.FileName == "" {
			return string(p.Data), true
		}
	}
	return "", false
}

// File is the last part named name that is a file, nil when there is none.
func (f *Form) File(name string) *FormPart {
	for i := len(f.Parts) - 1; i >= 0; i-- {
		if p := &f.Parts[i]; p.Name == name && p.FileName != "" {
			return p
		}
	}
	return nil
}

// Set makes value the one field named name, in place of any there were.
func (f *Form) Set(name, value string) {
	kept := f.Parts[:0]
	for _, p := range f.Parts {
		if p.Name != name || p.FileName != "" {
			kept = append(kept, p)
		}
	}
	f.Parts = append(kept, FormPart{Name: name, Data: []byte(value)})
}

// Facts are the form's model and stream fields, read as the engine reads them (the last of
// repeated fields). A stream field that is not a boolean is an ErrBadRequest.
func (f *Form) Facts() (Facts, error) {
	var facts Facts
	facts.Model, facts.HasModel = f.Value("model")
	if v, ok := f.Value("stream"); ok {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "1":
			facts.Stream, facts.HasStream = true, true
		case "false", "0":
			facts.HasStream = true
		default:
			return facts, fmt.Errorf("%w: stream is not a boolean", ErrBadRequest)
		}
	}
	facts.Limits.Prompts = 1
	return facts, nil
}

// Encode writes the form with a new random boundary and no preamble; the boundary is also on the
// body's first line. It returns the body and its content type.
func (f *Form) Encode() ([]byte, string) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range f.Parts {
		params := map[string]string{"name": p.Name}
		if p.FileName != "" {
			params["filename"] = p.FileName
		}
		h := textproto.MIMEHeader{"Content-Disposition": {mime.FormatMediaType("form-data", params)}}
		if p.ContentType != "" {
			h.Set("Content-Type", p.ContentType)
		} else if p.FileName != "" {
			h.Set("Content-Type", "application/octet-stream")
		}
		pw, _ := w.CreatePart(h) // writes to a buffer: cannot fail
		_, _ = pw.Write(p.Data)
	}
	_ = w.Close()
	return buf.Bytes(), w.FormDataContentType()
}
