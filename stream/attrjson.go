package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// This file reads and writes attribute values in DynamoDB JSON, the form
// Lambda passes stream images in: {"S": "..."}, {"N": "12"}, {"B": base64},
// {"M": {...}}, and so on. Errors name the attribute's type, never its value.

// jsonImage is an item in DynamoDB JSON.
type jsonImage map[string]types.AttributeValue

func (m *jsonImage) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("item: %w", err)
	}
	if raw == nil { // null: no image
		*m = nil
		return nil
	}
	out, err := decodeMap(raw)
	if err != nil {
		return err
	}
	*m = out
	return nil
}

func (m jsonImage) MarshalJSON() ([]byte, error) {
	out, err := encodeMap(m)
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

func decodeMap(raw map[string]json.RawMessage) (map[string]types.AttributeValue, error) {
	out := make(map[string]types.AttributeValue, len(raw))
	for name, v := range raw {
		av, err := decodeValue(v)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", name, err)
		}
		out[name] = av
	}
	return out, nil
}

func decodeList(raw []json.RawMessage) ([]types.AttributeValue, error) {
	out := make([]types.AttributeValue, len(raw))
	for i, v := range raw {
		av, err := decodeValue(v)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out[i] = av
	}
	return out, nil
}

var errNotOneType = errors.New("a DynamoDB JSON value has exactly one type key")

// decodeValue reads one {"TYPE": value} object.
func decodeValue(b json.RawMessage) (types.AttributeValue, error) {
	var typed map[string]json.RawMessage
	if err := json.Unmarshal(b, &typed); err != nil {
		return nil, errors.New("not a DynamoDB JSON value: not a JSON object")
	}
	if len(typed) != 1 {
		return nil, fmt.Errorf("%w, found %d", errNotOneType, len(typed))
	}
	for kind, v := range typed {
		av, err := decodeKind(kind, v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
		return av, nil
	}
	panic("unreachable")
}

func decodeKind(kind string, v json.RawMessage) (types.AttributeValue, error) {
	switch kind {
	case "L":
		var raw []json.RawMessage
		if err := json.Unmarshal(v, &raw); err != nil {
			return nil, errors.New("not a JSON array")
		}
		l, err := decodeList(raw)
		return &types.AttributeValueMemberL{Value: l}, err
	case "M":
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(v, &raw); err != nil {
			return nil, errors.New("not a JSON object")
		}
		m, err := decodeMap(raw)
		return &types.AttributeValueMemberM{Value: m}, err
	}
	decode, ok := decoders[kind]
	if !ok {
		return nil, errors.New("unknown DynamoDB JSON type")
	}
	return decode(v)
}

// decoders read the value of each DynamoDB JSON type key but L and M.
var decoders = map[string]func(json.RawMessage) (types.AttributeValue, error){
	"S":    decodeAs(func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }),
	"N":    decodeAs(func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }),
	"B":    decodeAs(func(v []byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: v} }),
	"BOOL": decodeAs(func(v bool) types.AttributeValue { return &types.AttributeValueMemberBOOL{Value: v} }),
	"NULL": decodeAs(func(v bool) types.AttributeValue { return &types.AttributeValueMemberNULL{Value: v} }),
	"SS":   decodeAs(func(v []string) types.AttributeValue { return &types.AttributeValueMemberSS{Value: v} }),
	"NS":   decodeAs(func(v []string) types.AttributeValue { return &types.AttributeValueMemberNS{Value: v} }),
	"BS":   decodeAs(func(v [][]byte) types.AttributeValue { return &types.AttributeValueMemberBS{Value: v} }),
}

// decodeAs reads a value of JSON shape V. Its error names the shape wanted
// only: json's own errors may quote the value.
func decodeAs[V any](wrap func(V) types.AttributeValue) func(json.RawMessage) (types.AttributeValue, error) {
	return func(b json.RawMessage) (types.AttributeValue, error) {
		var v V
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("not a JSON %T", v)
		}
		return wrap(v), nil
	}
}

func encodeMap(m map[string]types.AttributeValue) (map[string]any, error) {
	out := make(map[string]any, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		v, err := encodeValue(m[name])
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

func encodeList(l []types.AttributeValue) ([]any, error) {
	out := make([]any, len(l))
	for i, av := range l {
		v, err := encodeValue(av)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

// encodeValue returns av as a {"TYPE": value} object for encoding/json.
func encodeValue(av types.AttributeValue) (map[string]any, error) {
	if kind, v, ok := encodeScalar(av); ok {
		return map[string]any{kind: v}, nil
	}
	var (
		kind = "L"
		v    any
		err  error
	)
	switch av := av.(type) {
	case *types.AttributeValueMemberL:
		v, err = encodeList(av.Value)
	case *types.AttributeValueMemberM:
		kind = "M"
		v, err = encodeMap(av.Value)
	default:
		return nil, fmt.Errorf("cannot write %T as DynamoDB JSON", av)
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{kind: v}, nil
}

// encodeScalar returns the type key and value of every kind but L and M.
func encodeScalar(av types.AttributeValue) (string, any, bool) {
	switch av := av.(type) {
	case *types.AttributeValueMemberS:
		return "S", av.Value, true
	case *types.AttributeValueMemberN:
		return "N", av.Value, true
	case *types.AttributeValueMemberB:
		return "B", av.Value, true
	case *types.AttributeValueMemberBOOL:
		return "BOOL", av.Value, true
	case *types.AttributeValueMemberNULL:
		return "NULL", av.Value, true
	}
	return encodeSet(av)
}

func encodeSet(av types.AttributeValue) (string, any, bool) {
	switch av := av.(type) {
	case *types.AttributeValueMemberSS:
		return "SS", av.Value, true
	case *types.AttributeValueMemberNS:
		return "NS", av.Value, true
	case *types.AttributeValueMemberBS:
		return "BS", av.Value, true
	}
	return "", nil, false
}
