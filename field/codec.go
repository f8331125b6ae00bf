package field

import (
	"encoding/json"
	"fmt"

	"github.com/dynoseal/dynoseal/enc"
)

// encodePlain turns a value into the bytes that are sealed: string and []byte
// as they are, anything else as its JSON encoding.
func encodePlain[T any](v T) ([]byte, error) {
	switch x := any(v).(type) {
	case string:
		return []byte(x), nil
	case []byte:
		return append([]byte{}, x...), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T for encryption: %w", v, err)
	}
	return b, nil
}

// decodePlain is the inverse of encodePlain.
func decodePlain[T any](b []byte) (T, error) {
	var v T
	switch p := any(&v).(type) {
	case *string:
		*p = string(b)
	case *[]byte:
		*p = append([]byte{}, b...)
	default:
		if err := json.Unmarshal(b, &v); err != nil {
			return v, fmt.Errorf("%w: decode %T: %w", enc.ErrMalformed, v, err)
		}
	}
	return v, nil
}

// decodeLegacy reads a value written before the field was encrypted, as
// attributevalue would have stored it: S and N as text, B as bytes.
func decodeLegacy[T any](raw []byte, text bool) (T, error) {
	var v T
	switch p := any(&v).(type) {
	case *string:
		*p = string(raw)
		return v, nil
	case *[]byte:
		*p = append([]byte{}, raw...)
		return v, nil
	}
	if text {
		// A JSON string holding the text covers string-like types; a number
		// or object in the text covers the rest.
		if err := json.Unmarshal(raw, &v); err == nil {
			return v, nil
		}
		quoted, _ := json.Marshal(string(raw))
		if err := json.Unmarshal(quoted, &v); err == nil {
			return v, nil
		}
	} else if err := json.Unmarshal(raw, &v); err == nil {
		return v, nil
	}
	return v, fmt.Errorf("%w: unencrypted legacy value does not decode as %T", enc.ErrMalformed, v)
}
