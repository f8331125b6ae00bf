package fakedynamo

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// maxDepth bounds the nesting the reader follows; DynamoDB allows 32 levels
// of attribute values, each two JSON levels deep.
const maxDepth = 80

var errSyntax = errors.New("malformed JSON")

// reader walks one JSON text in place. It decodes only what the fake needs
// (member names, strings, numbers, booleans) and otherwise hands back the raw
// bytes of values, so serving a request costs little next to the client's
// work of building and reading it. The first error sticks; later calls are
// no-ops.
type reader struct {
	b     []byte
	i     int
	depth int
	err   error
	// nameAt is where, in b, the name objectRaw passes lies, or -1 when
	// the name was decoded from escapes into a copy.
	nameAt int
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) ws() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end or after an error.
func (r *reader) peek() byte {
	if r.err != nil {
		return 0
	}
	r.ws()
	if r.i >= len(r.b) {
		return 0
	}
	return r.b[r.i]
}

func (r *reader) expect(c byte) bool {
	if r.peek() != c {
		r.fail(errSyntax)
		return false
	}
	r.i++
	return true
}

// end checks that nothing but space follows the value read.
func (r *reader) end() {
	if r.err == nil {
		r.ws()
		if r.i != len(r.b) {
			r.fail(errSyntax)
		}
	}
}

// object reads an object, calling member for each name with the reader at
// its value; member must read the value (or skip it).
func (r *reader) object(member func(name string)) {
	r.objectRaw(func(name []byte) { member(string(name)) })
}

// objectRaw is object with each name as bytes, which alias the input
// unless the name has escapes.
func (r *reader) objectRaw(member func(name []byte)) {
	if !r.expect('{') {
		return
	}
	if r.depth++; r.depth > maxDepth {
		r.fail(errors.New("JSON nested too deeply"))
		return
	}
	defer func() { r.depth-- }()
	if r.peek() == '}' {
		r.i++
		return
	}
	for r.err == nil {
		name, at := r.strBytesAt()
		if !r.expect(':') {
			return
		}
		r.nameAt = at
		member(name)
		switch r.peek() {
		case ',':
			r.i++
		case '}':
			r.i++
			return
		default:
			r.fail(errSyntax)
		}
	}
}

// array reads an array, calling elem with the reader at each element.
func (r *reader) array(elem func()) {
	if !r.expect('[') {
		return
	}
	if r.depth++; r.depth > maxDepth {
		r.fail(errors.New("JSON nested too deeply"))
		return
	}
	defer func() { r.depth-- }()
	if r.peek() == ']' {
		r.i++
		return
	}
	for r.err == nil {
		elem()
		switch r.peek() {
		case ',':
			r.i++
		case ']':
			r.i++
			return
		default:
			r.fail(errSyntax)
		}
	}
}

// strRaw reads a string and returns it with its quotes, as written. It is
// lenient: control characters and bad escapes inside are not refused here.
func (r *reader) strRaw() (raw []byte, escaped bool) {
	if r.peek() != '"' {
		r.fail(errSyntax)
		return nil, false
	}
	start := r.i
	i := r.i + 1
	for {
		j := bytes.IndexByte(r.b[i:], '"')
		if j < 0 {
			r.fail(errSyntax)
			return nil, false
		}
		if k := bytes.IndexByte(r.b[i:i+j], '\\'); k >= 0 {
			escaped = true
			i += k + 2 // the backslash and the character it escapes
			continue
		}
		r.i = i + j + 1
		return r.b[start:r.i], escaped
	}
}

// strBytesAt reads a string and returns its bytes: a view of the input
// starting at index at when it has no escapes, else a decoded copy and -1.
func (r *reader) strBytesAt() (b []byte, at int) {
	raw, escaped := r.strRaw()
	if r.err != nil {
		return nil, -1
	}
	if !escaped {
		if !utf8.Valid(raw) {
			r.fail(errSyntax)
			return nil, -1
		}
		return raw[1 : len(raw)-1], r.i - len(raw) + 1
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		r.fail(err)
	}
	return []byte(s), -1
}

// str reads and decodes a string.
func (r *reader) str() string {
	b, _ := r.strBytesAt()
	return string(b)
}

func (r *reader) literal(word string) bool {
	if r.peek() == 0 || len(r.b)-r.i < len(word) || string(r.b[r.i:r.i+len(word)]) != word {
		r.fail(errSyntax)
		return false
	}
	r.i += len(word)
	return true
}

func (r *reader) boolean() bool {
	switch r.peek() {
	case 't':
		return r.literal("true")
	case 'f':
		r.literal("false")
		return false
	}
	r.fail(errSyntax)
	return false
}

func (r *reader) numberRaw() []byte {
	if r.peek() == 0 {
		r.fail(errSyntax)
		return nil
	}
	start := r.i
	for r.i < len(r.b) && isNumberByte(r.b[r.i]) {
		r.i++
	}
	if r.i == start {
		r.fail(errSyntax)
	}
	return r.b[start:r.i]
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// integer reads a JSON number that must be an integer.
func (r *reader) integer() int64 {
	raw := r.numberRaw()
	if r.err != nil {
		return 0
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		r.fail(err)
	}
	return n
}

// skip reads any value and returns its raw bytes.
func (r *reader) skip() []byte {
	c := r.peek()
	start := r.i
	switch c {
	case '{':
		r.objectRaw(func([]byte) { r.skip() })
	case '[':
		r.array(func() { r.skip() })
	case '"':
		raw, _ := r.strRaw()
		return raw
	case 't':
		r.literal("true")
	case 'f':
		r.literal("false")
	case 'n':
		r.literal("null")
	default:
		r.numberRaw()
	}
	if r.err != nil {
		return nil
	}
	return r.b[start:r.i]
}

// attrValue reads one DynamoDB attribute value, checking its shape (an
// object with exactly one known type member), and returns its raw bytes.
func (r *reader) attrValue() []byte {
	if r.peek() != '{' {
		r.fail(errors.New("an attribute value must be an object"))
		return nil
	}
	start := r.i
	members := 0
	r.objectRaw(func(tag []byte) {
		members++
		switch string(tag) {
		case "S", "N", "B":
			r.strRaw()
		case "SS", "NS", "BS":
			n := 0
			r.array(func() { r.strRaw(); n++ })
			if n == 0 {
				r.fail(errors.New("an empty set is not allowed"))
			}
		case "M":
			r.objectRaw(func([]byte) { r.attrValue() })
		case "L":
			r.array(func() { r.attrValue() })
		case "NULL":
			if !r.boolean() {
				r.fail(errors.New("NULL must be true"))
			}
		case "BOOL":
			r.boolean()
		default:
			r.fail(errors.New("unknown attribute value type " + string(tag)))
		}
	})
	if r.err == nil && members != 1 {
		r.fail(errors.New("an attribute value must have exactly one type"))
	}
	if r.err != nil {
		return nil
	}
	return r.b[start:r.i]
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s)
	return append(dst, b...)
}
