package field

import (
	"bytes"
	"cmp"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/internal/attrkind"
)

// The plaintext encoding (documented in docs/field-encryption.md, "Types"):
//
//   - a T whose underlying type is string is sealed as its UTF-8 bytes;
//   - a T whose underlying type is a slice of bytes is sealed as those bytes;
//   - any other T is sealed as its compact encoding/json encoding, without
//     HTML escaping, and decoded with json.Decoder.UseNumber.
//
// Where JSON would not give back exactly what was sealed, encoding fails
// instead of losing data quietly: NaN and infinite floats, strings that are not
// valid UTF-8 (JSON would replace their bytes), and types that hold another
// Encrypted (its JSON form is redacted).
//
// Error messages here never quote the value: they name the type, the JSON
// field path or the byte offset.

// plainKind says how values of one T are turned into bytes.
type plainKind int

const (
	plainJSON plainKind = iota
	plainString
	plainBytes
)

func kindOf(t reflect.Type) plainKind {
	switch {
	case t.Kind() == reflect.String:
		return plainString
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		return plainBytes
	}
	return plainJSON
}

// typeChecks caches checkJSONType per type; the answer never changes.
var typeChecks sync.Map // reflect.Type -> error (nil stored as errOK)

var errOK = errors.New("ok")

// checkType reports whether t, a field.Encrypted[T] type, can be sealed: it
// fails for a T that holds another Encrypted (whose JSON form is redacted),
// for a struct in T that JSON sees no field of (its value would be lost), and
// for a t that is not an Encrypted.
// Repositories call it for every encrypted field when they are created.
func checkType(t reflect.Type) error {
	if t == nil || !t.Implements(sealedMarkerType) {
		return fmt.Errorf("%v is not a field.Encrypted type", t)
	}
	plain := reflect.Zero(t).Interface().(interface{ plainType() reflect.Type }).plainType()
	if err := checkPlainType(plain); err != nil {
		return fmt.Errorf("field.Encrypted[%s]: %w", plain, err)
	}
	return nil
}

// checkPlainType reports whether values of t can be the T of an Encrypted.
func checkPlainType(t reflect.Type) error {
	if kindOf(t) != plainJSON {
		return nil
	}
	if v, ok := typeChecks.Load(t); ok {
		if v == errOK {
			return nil
		}
		return v.(error)
	}
	err := checkJSONType(t, map[reflect.Type]bool{})
	if err == nil {
		typeChecks.Store(t, errOK)
	} else {
		typeChecks.Store(t, err)
	}
	return err
}

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	sealedMarkerType  = reflect.TypeFor[interface{ encryptedField() }]()
)

func checkJSONType(t reflect.Type, seen map[reflect.Type]bool) error {
	if seen[t] {
		return nil
	}
	seen[t] = true
	if t.Implements(sealedMarkerType) || reflect.PointerTo(t).Implements(sealedMarkerType) {
		return fmt.Errorf("it holds %s: an Encrypted cannot hold another Encrypted (its JSON form is redacted); use the plain type inside", t)
	}
	for _, m := range []reflect.Type{jsonMarshalerType, textMarshalerType} {
		if t.Implements(m) || reflect.PointerTo(t).Implements(m) {
			return nil // the type decides its own encoding
		}
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return checkJSONType(t.Elem(), seen)
	case reflect.Map:
		if err := checkJSONType(t.Key(), seen); err != nil {
			return err
		}
		return checkJSONType(t.Elem(), seen)
	case reflect.Struct:
		return checkJSONStruct(t, seen)
	}
	return nil
}

func checkJSONStruct(t reflect.Type, seen map[reflect.Type]bool) error {
	if t.NumField() > 0 && !hasJSONField(t) {
		return fmt.Errorf("%s has no field JSON can see (all unexported or `json:\"-\"`), so its value would be lost; export a field, or give %s a MarshalJSON and UnmarshalJSON", t, t)
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		if err := checkJSONType(f.Type, seen); err != nil {
			return err
		}
	}
	return nil
}

// hasJSONField reports whether encoding/json writes any field of struct t.
func hasJSONField(t reflect.Type) bool {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Tag.Get("json") == "-" {
			continue
		}
		if f.IsExported() {
			return true
		}
		if f.Anonymous {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && hasJSONField(ft) {
				return true
			}
		}
	}
	return false
}

var timeType = reflect.TypeFor[time.Time]()

var textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()

// holdsTime caches mayHoldTime per type.
var holdsTime sync.Map // reflect.Type -> bool

// mayHoldTime reports whether values of t can hold a time.Time that
// encoding/json writes with time.Time's own MarshalJSON.
func mayHoldTime(t reflect.Type) bool {
	if v, ok := holdsTime.Load(t); ok {
		return v.(bool)
	}
	found := typeMayHoldTime(t, map[reflect.Type]bool{})
	holdsTime.Store(t, found)
	return found
}

func typeMayHoldTime(t reflect.Type, seen map[reflect.Type]bool) bool {
	if t == timeType || t.Kind() == reflect.Interface {
		return true
	}
	if seen[t] || t.Implements(jsonMarshalerType) {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return typeMayHoldTime(t.Elem(), seen)
	case reflect.Map:
		return typeMayHoldTime(t.Key(), seen) || typeMayHoldTime(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); (f.IsExported() || f.Anonymous) && typeMayHoldTime(f.Type, seen) {
				return true
			}
		}
	}
	return false
}

// checkTimeOffsets fails for a time.Time whose zone offset has seconds
// (local mean time, before about 1900): RFC 3339, which time.Time's JSON
// uses, writes offsets in whole minutes, so the value would come back as a
// different instant.
func checkTimeOffsets(v reflect.Value) error {
	if !v.IsValid() {
		return nil
	}
	t := v.Type()
	switch {
	case t == timeType:
		return checkTimeOffset(v)
	case t.Kind() != reflect.Interface && !mayHoldTime(t):
		return nil
	}
	return checkTimeOffsetsInside(v)
}

// checkTimeOffsetsInside checks the values v holds.
func checkTimeOffsetsInside(v reflect.Value) error {
	switch t := v.Type(); t.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return checkTimeOffsets(v.Elem())
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := checkTimeOffsets(v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		for key, elem := range v.Seq2() {
			if err := cmp.Or(checkTimeOffsets(key), checkTimeOffsets(elem)); err != nil {
				return err
			}
		}
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() || f.Anonymous {
				if err := checkTimeOffsets(v.Field(i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func checkTimeOffset(v reflect.Value) error {
	if !v.CanInterface() {
		// Reached through an unexported embedded struct, where reflect
		// cannot read it; a corner too rare to copy the value for.
		return nil
	}
	if _, offset := v.Interface().(time.Time).Zone(); offset%60 != 0 {
		return errors.New("it holds a time.Time whose zone offset has seconds, which RFC 3339 (time.Time's JSON form) cannot carry; convert it with UTC() first")
	}
	return nil
}

// encodeError describes a value that cannot be encoded. Its text never holds
// the value; Unwrap gives the encoder's own error for callers who need it.
type encodeError struct {
	typ    reflect.Type
	reason string
	cause  error
}

func (e *encodeError) Error() string {
	return fmt.Sprintf("cannot encode %s for encryption: %s", e.typ, e.reason)
}

func (e *encodeError) Unwrap() error { return e.cause }

// encodePlain turns a value into the bytes that are sealed.
func encodePlain[T any](p *T) ([]byte, error) {
	t := reflect.TypeFor[T]()
	// For string- and []byte-like T, reading v as its underlying type saves
	// the allocation of boxing it for reflect, once per value sealed.
	switch kindOf(t) {
	case plainString:
		return []byte(*(*string)(unsafe.Pointer(p))), nil
	case plainBytes:
		// Never nil, also for a nil T: nil is no value to seal.
		return append([]byte{}, *(*[]byte)(unsafe.Pointer(p))...), nil
	}
	rv := reflect.ValueOf(p).Elem()
	if err := checkPlainType(t); err != nil {
		return nil, &encodeError{typ: t, reason: err.Error()}
	}
	if mayHoldTime(t) {
		if err := checkTimeOffsets(rv); err != nil {
			return nil, &encodeError{typ: t, reason: err.Error()}
		}
	}
	var buf bytes.Buffer
	je := json.NewEncoder(&buf)
	je.SetEscapeHTML(false)
	if err := je.Encode(*p); err != nil {
		clear(buf.Bytes())
		return nil, &encodeError{typ: t, reason: describeJSONEncodeError(err), cause: err}
	}
	out := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if hasReplacedInvalidUTF8(out) {
		clear(buf.Bytes())
		return nil, &encodeError{typ: t, reason: "it holds a string that is not valid UTF-8, which JSON cannot carry exactly; use []byte for binary data"}
	}
	return out, nil
}

func describeJSONEncodeError(err error) string {
	var unsupportedValue *json.UnsupportedValueError
	var unsupportedType *json.UnsupportedTypeError
	var marshaler *json.MarshalerError
	switch {
	case errors.As(err, &unsupportedValue):
		// The value's text (NaN, +Inf) is not repeated: it is the plaintext.
		return "it holds a NaN or infinite float, which JSON cannot carry"
	case errors.As(err, &unsupportedType):
		return fmt.Sprintf("JSON cannot encode values of type %s", unsupportedType.Type)
	case errors.As(err, &marshaler):
		if marshaler.Type == timeType {
			// time.Time's errors name a limit (year range, zone offset), not the value.
			return marshaler.Unwrap().Error()
		}
		return fmt.Sprintf("the MarshalJSON or MarshalText method of %s failed", marshaler.Type)
	}
	return "JSON encoding failed"
}

// hasReplacedInvalidUTF8 reports whether encoding/json replaced invalid
// UTF-8 in a string with the escape \ufffd. A U+FFFD that was in the input
// is written as its raw UTF-8 bytes, never as this escape, so the escape
// marks exactly the lossy case (or a MarshalJSON method that wrote it).
func hasReplacedInvalidUTF8(js []byte) bool {
	for i := 0; i < len(js); i++ {
		if js[i] != '\\' {
			continue
		}
		i++ // the escaped character; `\\` must not start another escape
		if i < len(js) && js[i] == 'u' && i+4 < len(js) && bytes.EqualFold(js[i+1:i+5], []byte("fffd")) {
			return true
		}
	}
	return false
}

// decodePlain is the inverse of encodePlain.
func decodePlain[T any](b []byte) (T, error) {
	var v T
	switch kindOf(reflect.TypeFor[T]()) { // see encodePlain
	case plainString:
		*(*string)(unsafe.Pointer(&v)) = string(b)
		return v, nil
	case plainBytes:
		// Always a new, non-nil slice: nil and empty both seal as no bytes.
		*(*[]byte)(unsafe.Pointer(&v)) = append([]byte{}, b...)
		return v, nil
	}
	rv := reflect.ValueOf(&v).Elem()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		var zero T
		return zero, fmt.Errorf("%w: decrypted value does not decode as %s: %s", enc.ErrMalformed, rv.Type(), describeJSONDecodeError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		var zero T
		return zero, fmt.Errorf("%w: decrypted value has data after the JSON %s", enc.ErrMalformed, rv.Type())
	}
	return v, nil
}

func describeJSONDecodeError(err error) string {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("invalid JSON at byte %d", syntax.Offset)
	case errors.As(err, &typeErr):
		// typeErr.Value may quote a number from the plaintext: leave it out.
		if typeErr.Field != "" {
			return fmt.Sprintf("JSON field %s does not fit %s", typeErr.Field, typeErr.Type)
		}
		return fmt.Sprintf("JSON value does not fit %s", typeErr.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	}
	return "an UnmarshalJSON or UnmarshalText method failed"
}

// decodeLegacy loads an attribute written before the field was encrypted:
// the value a plain T field would have held, read as attributevalue.Unmarshal
// reads it. A []byte-like T also takes an S as its UTF-8 bytes, and a
// string-like T an N as its digits, since both are common before a field
// is encrypted.
func decodeLegacy[T any](av types.AttributeValue) (T, error) {
	var v T
	rv := reflect.ValueOf(&v).Elem()
	switch kindOf(rv.Type()) {
	case plainString:
		if n, ok := av.(*types.AttributeValueMemberN); ok {
			rv.SetString(n.Value)
			return v, nil
		}
	case plainBytes:
		if s, ok := av.(*types.AttributeValueMemberS); ok {
			rv.SetBytes([]byte(s.Value))
			return v, nil
		}
	}
	if err := attributevalue.Unmarshal(av, &v); err != nil {
		var zero T
		// attributevalue's message can quote the value: only name the types.
		return zero, fmt.Errorf("%w: unencrypted (legacy) %s attribute does not load as %s", enc.ErrMalformed, attrkind.Of(av), rv.Type())
	}
	return v, nil
}
