package builtin

import (
	"bytes"
	"errors"
	"unicode/utf16"
	"unicode/utf8"
)

// A small reader of JSON that json.Valid has accepted. It reads members by their exact keys
// (encoding/json matches struct fields case-insensitively, so {"Model":…} would be the model here
// while the Python engines, the proxy and the client ignore it), and it walks the body in place:
// what a request costs in memory is the text it carries, not one allocation per element.

var errType = errors.New("value of the wrong type")

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the end of the string that starts at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the end of the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && !isSpace(b[i]) {
		i++
	}
	return i
}

// members calls f with the key (quoted) and value of each member of v, an object or null.
func members(v []byte, f func(key, val []byte) error) error {
	if isNull(v) {
		return nil
	}
	if v[0] != '{' {
		return errType
	}
	return items(v, func(b []byte, i int) (int, error) {
		ks, ke := i, skipString(b, i)
		i = skipSpace(b, skipSpace(b, ke)+1) // past the colon
		ve := skipValue(b, i)
		return ve, f(b[ks:ke], b[i:ve])
	})
}

// field asks pick for the value of one key.
type field struct {
	key string
	val *[]byte
}

// pick sets each field's val to its key's value in v, an object or null; a key that repeats
// keeps its last value, as in Python's json. A key not present leaves val as it is.
func pick(v []byte, fields ...field) error {
	return members(v, func(k, val []byte) error {
		for _, f := range fields {
			if keyIs(k, f.key) {
				*f.val = val
				return nil
			}
		}
		return nil
	})
}

// elements calls f with each element of v, an array or null.
func elements(v []byte, f func(val []byte) error) error {
	if isNull(v) {
		return nil
	}
	if v[0] != '[' {
		return errType
	}
	return items(v, func(b []byte, i int) (int, error) {
		e := skipValue(b, i)
		return e, f(b[i:e])
	})
}

// items runs item on each comma-separated entry of the object or array v; item returns where
// its entry ends.
func items(v []byte, item func(b []byte, i int) (int, error)) error {
	i := skipSpace(v, 1)
	if v[i] == '}' || v[i] == ']' {
		return nil
	}
	for {
		end, err := item(v, i)
		if err != nil {
			return err
		}
		i = skipSpace(v, end)
		if i >= len(v) || v[i] != ',' {
			return nil
		}
		i = skipSpace(v, i+1)
	}
}

// isNull reports whether v is null or missing (empty), which mean the same to the engine.
func isNull(v []byte) bool { return len(v) == 0 || string(v) == "null" }

// keyIs reports whether the quoted key k is name once unescaped.
func keyIs(k []byte, name string) bool {
	k = k[1 : len(k)-1]
	if bytes.IndexByte(k, '\\') < 0 {
		return string(k) == name
	}
	if len(k) > 6*len(name) {
		return false // longer than name with every character escaped
	}
	var buf [64]byte
	return string(appendUnquoted(buf[:0], k)) == name
}

// stringValue decodes v, a string or null or missing (""), as encoding/json would.
func stringValue(v []byte) (string, error) {
	switch {
	case isNull(v):
		return "", nil
	case v[0] != '"':
		return "", errType
	}
	s := v[1 : len(v)-1]
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return string(s), nil
	}
	return string(appendUnquoted(make([]byte, 0, len(s)), s)), nil
}

// boolValue decodes v, a boolean or null or missing (false).
func boolValue(v []byte) (bool, error) {
	switch string(v) {
	case "true":
		return true, nil
	case "false", "null", "":
		return false, nil
	}
	return false, errType
}

// appendUnquoted appends the text of s, the inside of a valid JSON string, replacing invalid
// UTF-8 and lone surrogates with U+FFFD as encoding/json does.
func appendUnquoted(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			esc := s[i+1]
			i += 2
			switch esc {
			case 'u':
				r := hex4(s[i:])
				i += 4
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
						r2 = hex4(s[i+2:])
					}
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						dst = utf8.AppendRune(dst, d)
						i += 6
						continue
					}
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			default: // '"', '\\', '/'
				dst = append(dst, esc)
			}
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, n := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && n == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, s[i:i+n]...)
			}
			i += n
		}
	}
	return dst
}

// hex4 decodes the four hex digits at the start of s (valid JSON guarantees them).
func hex4(s []byte) rune {
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}
