package repo

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/internal/attrkind"
	"github.com/dynoseal/dynoseal/internal/convert"
	"github.com/dynoseal/dynoseal/internal/number"
)

// attrMap is an item or key as DynamoDB sends it.
type attrMap = map[string]types.AttributeValue

func (r *Repo[T]) keyMap(k Key) (attrMap, error) {
	p := r.plan
	if k.Hash == nil {
		return nil, fmt.Errorf("repo %s: key has no hash value", r.table)
	}
	hv, err := keyValue(p.hash, k.Hash)
	if err != nil {
		return nil, fmt.Errorf("repo %s: hash key %s: %w", r.table, p.hash.name, err)
	}
	switch {
	case p.rng == nil && k.Range != nil:
		return nil, fmt.Errorf("repo %s: table has no range key but the key has one", r.table)
	case p.rng != nil && k.Range == nil:
		return nil, fmt.Errorf("repo %s: key lacks the range key %s", r.table, p.rng.name)
	case p.rng == nil:
		return attrMap{p.hash.name: hv}, nil
	}
	rv, err := keyValue(p.rng, k.Range)
	if err != nil {
		return nil, fmt.Errorf("repo %s: range key %s: %w", r.table, p.rng.name, err)
	}
	return attrMap{p.hash.name: hv, p.rng.name: rv}, nil
}

// keyValue turns a key value into the attribute value the field would have.
// The value must be of the field's type, or a number or string type that
// converts to it without loss.
func keyValue(f *attr, v any) (types.AttributeValue, error) {
	val := reflect.ValueOf(v)
	if !val.Type().AssignableTo(f.typ) {
		converted, ok := convert.Exactly(val, f.typ)
		if !ok {
			return nil, fmt.Errorf("%T does not fit the key's type %s", v, f.typ)
		}
		val = converted
	}
	var av types.AttributeValue
	if f.plain {
		av = marshalPlain(val)
	} else {
		var err error
		if av, err = marshalAs(f, val); err != nil {
			return nil, err
		}
	}
	if av == nil {
		return nil, errors.New("empty value")
	}
	return av, nil
}

var marshalerType = reflect.TypeFor[attributevalue.Marshaler]()

// marshalAs returns v, a value of f's type, as the attribute it is in an
// item; nil when the item would leave it out or hold NULL.
func marshalAs(f *attr, v reflect.Value) (types.AttributeValue, error) {
	w := reflect.New(f.wrapper).Elem()
	w.Field(0).Set(v)
	m, err := marshalMap(w.Interface())
	if err != nil {
		return nil, err
	}
	if av := m[f.name]; !isNull(av) {
		return av, nil
	}
	return nil, nil
}

// plainKey reports whether key values of f can be written directly by
// marshalPlain, as attributevalue would write them: a string, integer or
// []byte type with no tag options and no marshaler of its own.
func plainKey(f *attr) bool {
	_, opts, _ := strings.Cut(f.tag.Get("dynamodbav"), ",")
	t := f.typ
	if opts != "" || t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType) {
		return false
	}
	switch t.Kind() {
	case reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return t.Kind() == reflect.Slice && t.Elem() == reflect.TypeFor[uint8]()
}

// marshalPlain writes v, a key value of a field plainKey accepts; nil for
// an empty one.
func marshalPlain(v reflect.Value) types.AttributeValue {
	switch {
	case v.Kind() == reflect.String && v.Len() > 0:
		return &types.AttributeValueMemberS{Value: v.String()}
	case v.CanInt():
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(v.Int(), 10)}
	case v.CanUint():
		return &types.AttributeValueMemberN{Value: strconv.FormatUint(v.Uint(), 10)}
	case v.Kind() == reflect.Slice && v.Len() > 0:
		return &types.AttributeValueMemberB{Value: v.Bytes()}
	}
	return nil
}

func scalarType(t reflect.Type) (types.ScalarAttributeType, error) {
	switch t.Kind() {
	case reflect.String:
		return types.ScalarAttributeTypeS, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return types.ScalarAttributeTypeN, nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return types.ScalarAttributeTypeB, nil
		}
	}
	return "", fmt.Errorf("type %s cannot be a key (want a string, number or []byte)", t)
}

// keyID returns a string that is equal for two items exactly when DynamoDB
// sees the same primary key in them; it reads only the key attributes.
func (r *Repo[T]) keyID(m attrMap) (string, error) {
	var b []byte
	for _, name := range r.plan.keyNames() {
		var kind byte
		var val string
		switch v := m[name].(type) {
		case *types.AttributeValueMemberS:
			kind, val = 'S', v.Value
		case *types.AttributeValueMemberN:
			c, err := number.Canonical(v.Value)
			if err != nil {
				return "", fmt.Errorf("key attribute %s: %w", name, err)
			}
			kind, val = 'N', c
		case *types.AttributeValueMemberB:
			kind, val = 'B', string(v.Value)
		case nil:
			return "", fmt.Errorf("key attribute %s is missing", name)
		default:
			return "", fmt.Errorf("key attribute %s is %s, want S, N or B", name, attrkind.Of(v))
		}
		b = append(strconv.AppendInt(append(b, kind), int64(len(val)), 10), ':')
		b = append(b, val...)
	}
	return string(b), nil
}

// DynamoDB's limits for one request. Item sizes are counted the way DynamoDB
// counts them (attribute names plus values), not as JSON on the wire.
const (
	maxWritesPerRequest = 25
	maxKeysPerRequest   = 100
	maxRequestBytes     = 16 << 20
	maxItemBytes        = 400 << 10
)
