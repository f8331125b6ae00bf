package field_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/internal/cell"
)

// The fuzzer's bytes describe an attribute value tree: a tag byte, then the
// member's content. Strings and byte strings are a length byte and that
// many bytes; sets and lists a count byte and their members; maps a count
// byte and key/value pairs. Tags past the DynamoDB types give typed-nil
// members, nil interfaces and "ENC:"-prefixed strings, which a caller's own
// value (not DynamoDB) could hold.
const (
	tagS byte = iota
	tagN
	tagB
	tagBOOL
	tagNULL
	tagSS
	tagNS
	tagBS
	tagL
	tagM
	tagEncS
	tagTypedNil
	tagNilInterface
	tagCount
)

type avReader struct {
	data  []byte
	nodes int
}

func (r *avReader) byte() byte {
	if len(r.data) == 0 {
		return 0
	}
	b := r.data[0]
	r.data = r.data[1:]
	return b
}

func (r *avReader) bytes() []byte {
	n := int(r.byte())
	n = min(n, len(r.data))
	b := r.data[:n]
	r.data = r.data[n:]
	return b
}

func (r *avReader) value(depth int) types.AttributeValue {
	r.nodes++
	if r.nodes > 2000 || depth > 40 {
		return &types.AttributeValueMemberNULL{Value: true}
	}
	switch r.byte() % tagCount {
	case tagS:
		return &types.AttributeValueMemberS{Value: string(r.bytes())}
	case tagN:
		return &types.AttributeValueMemberN{Value: string(r.bytes())}
	case tagB:
		return &types.AttributeValueMemberB{Value: r.bytes()}
	case tagBOOL:
		return &types.AttributeValueMemberBOOL{Value: r.byte()&1 == 1}
	case tagNULL:
		return &types.AttributeValueMemberNULL{Value: r.byte()&1 == 1}
	case tagSS:
		n := int(r.byte() % 8)
		v := &types.AttributeValueMemberSS{}
		for range n {
			v.Value = append(v.Value, string(r.bytes()))
		}
		return v
	case tagNS:
		n := int(r.byte() % 8)
		v := &types.AttributeValueMemberNS{}
		for range n {
			v.Value = append(v.Value, string(r.bytes()))
		}
		return v
	case tagBS:
		n := int(r.byte() % 8)
		v := &types.AttributeValueMemberBS{}
		for range n {
			v.Value = append(v.Value, r.bytes())
		}
		return v
	case tagL:
		n := int(r.byte() % 8)
		v := &types.AttributeValueMemberL{Value: []types.AttributeValue{}}
		for range n {
			v.Value = append(v.Value, r.value(depth+1))
		}
		return v
	case tagM:
		n := int(r.byte() % 8)
		v := &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}}
		for range n {
			k := string(r.bytes())
			v.Value[k] = r.value(depth + 1)
		}
		return v
	case tagEncS:
		return &types.AttributeValueMemberS{Value: enc.Prefix + string(r.bytes())}
	case tagTypedNil:
		switch r.byte() % 10 {
		case 0:
			return (*types.AttributeValueMemberS)(nil)
		case 1:
			return (*types.AttributeValueMemberN)(nil)
		case 2:
			return (*types.AttributeValueMemberB)(nil)
		case 3:
			return (*types.AttributeValueMemberBOOL)(nil)
		case 4:
			return (*types.AttributeValueMemberNULL)(nil)
		case 5:
			return (*types.AttributeValueMemberSS)(nil)
		case 6:
			return (*types.AttributeValueMemberNS)(nil)
		case 7:
			return (*types.AttributeValueMemberBS)(nil)
		case 8:
			return (*types.AttributeValueMemberL)(nil)
		default:
			return (*types.AttributeValueMemberM)(nil)
		}
	default:
		return nil
	}
}

// avBytes writes the fuzzer's encoding of av (the inverse of avReader.value,
// for seeds).
func avBytes(av types.AttributeValue) []byte {
	str := func(out []byte, s []byte) []byte { return append(append(out, byte(len(s))), s...) }
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		if strings.HasPrefix(v.Value, enc.Prefix) {
			return str([]byte{tagEncS}, []byte(strings.TrimPrefix(v.Value, enc.Prefix)))
		}
		return str([]byte{tagS}, []byte(v.Value))
	case *types.AttributeValueMemberN:
		return str([]byte{tagN}, []byte(v.Value))
	case *types.AttributeValueMemberB:
		return str([]byte{tagB}, v.Value)
	case *types.AttributeValueMemberBOOL:
		if v.Value {
			return []byte{tagBOOL, 1}
		}
		return []byte{tagBOOL, 0}
	case *types.AttributeValueMemberNULL:
		return []byte{tagNULL, 1}
	case *types.AttributeValueMemberSS:
		out := []byte{tagSS, byte(len(v.Value))}
		for _, s := range v.Value {
			out = str(out, []byte(s))
		}
		return out
	case *types.AttributeValueMemberNS:
		out := []byte{tagNS, byte(len(v.Value))}
		for _, s := range v.Value {
			out = str(out, []byte(s))
		}
		return out
	case *types.AttributeValueMemberBS:
		out := []byte{tagBS, byte(len(v.Value))}
		for _, s := range v.Value {
			out = str(out, s)
		}
		return out
	case *types.AttributeValueMemberL:
		out := []byte{tagL, byte(len(v.Value))}
		for _, e := range v.Value {
			out = append(out, avBytes(e)...)
		}
		return out
	case *types.AttributeValueMemberM:
		out := []byte{tagM, byte(len(v.Value))}
		for k, e := range v.Value {
			out = str(out, []byte(k))
			out = append(out, avBytes(e)...)
		}
		return out
	}
	return []byte{tagNilInterface}
}

type fuzzProfile struct {
	Name  string            `dynamodbav:"name" json:"name"`
	Age   int8              `dynamodbav:"age" json:"age"`
	Tags  []string          `dynamodbav:"tags" json:"tags"`
	Attrs map[string]any    `dynamodbav:"attrs" json:"attrs"`
	Next  *fuzzProfile      `dynamodbav:"next" json:"next"`
	Blobs map[string][]byte `dynamodbav:"blobs" json:"blobs"`
}

// exercise loads av into an Encrypted[T], then uses every method that a
// loaded value meets: none may panic, and every error must be an ErrMalformed.
func exercise[T any](t *testing.T, av types.AttributeValue, opened []byte) {
	var e field.Encrypted[T]
	if err := e.UnmarshalDynamoDBAttributeValue(av); err != nil {
		if !errors.Is(err, enc.ErrMalformed) {
			t.Fatalf("Encrypted[%T]: error does not wrap ErrMalformed: %v", *new(T), err)
		}
		return
	}
	// A value that does not load is kept with its reason, for the
	// repository to report with the item and path.
	if err := cell.Of(&e).LoadError(); err != nil {
		if !errors.Is(err, enc.ErrMalformed) {
			t.Fatalf("Encrypted[%T]: load error does not wrap ErrMalformed: %v", *new(T), err)
		}
		if _, verr := e.Value(); verr != err {
			t.Fatalf("Encrypted[%T]: Value gives %v, not the load error %v", *new(T), verr, err)
		}
	}
	_, _ = e.Value()
	_ = e.IsSealed()
	_ = e.IsPresent()
	_ = e.Ciphertext()
	_ = e.String()
	if _, err := e.MarshalDynamoDBAttributeValue(); err != nil && !errors.Is(err, enc.ErrNotSealed) && !errors.Is(err, enc.ErrMalformed) {
		t.Fatalf("Encrypted[%T]: marshal back: %v", *new(T), err)
	}
	if plain, ok, err := cell.Of(&e).Pending(); ok && err == nil {
		// A legacy value must be sealable: re-open what would be sealed.
		var back field.Encrypted[T]
		back.UnmarshalDynamoDBAttributeValue(&types.AttributeValueMemberS{Value: enc.Prefix + "AQ=="})
		if err := cell.Of(&back).Opened(plain); err != nil {
			t.Fatalf("Encrypted[%T]: a loaded legacy value does not decode from its own encoding: %v", *new(T), err)
		}
	}
	if _, ok := cell.Of(&e).Stored(); ok {
		if err := cell.Of(&e).Opened(opened); err != nil && !errors.Is(err, enc.ErrMalformed) {
			t.Fatalf("Encrypted[%T]: SetOpened error does not wrap ErrMalformed: %v", *new(T), err)
		}
		_, _ = e.Value()
	}
}

func fuzzSeeds() []types.AttributeValue {
	S := func(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
	N := func(s string) types.AttributeValue { return &types.AttributeValueMemberN{Value: s} }
	return []types.AttributeValue{
		S("123-45-6789"), S(""), S(enc.Prefix + "AQACAAAA"), S("2024-02-29T23:59:59.123456789+05:30"),
		S("🙂\x00\xff"), N("-9223372036854775808"), N("18446744073709551615"), N("5e-324"), N("1e400"), N("x"),
		&types.AttributeValueMemberB{Value: []byte{0, 1, 0xff}}, &types.AttributeValueMemberBOOL{Value: true},
		&types.AttributeValueMemberNULL{Value: true},
		&types.AttributeValueMemberSS{Value: []string{"a", "b"}}, &types.AttributeValueMemberNS{Value: []string{"1", "2.5"}},
		&types.AttributeValueMemberBS{Value: [][]byte{{1}, {}}},
		&types.AttributeValueMemberL{Value: []types.AttributeValue{N("1"), S("x"), &types.AttributeValueMemberL{}}},
		&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"name": S("Ann"), "age": N("300"), "tags": &types.AttributeValueMemberSS{Value: []string{"t"}},
			"attrs": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": &types.AttributeValueMemberNULL{Value: true}}},
			"next":  &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"name": N("1")}},
		}},
	}
}

func FuzzUnmarshalDynamoDBAttributeValue(f *testing.F) {
	for _, av := range fuzzSeeds() {
		f.Add(avBytes(av), []byte(`{"name":"x","age":1}`))
	}
	f.Add([]byte{tagTypedNil, 4}, []byte("null"))
	f.Add([]byte{tagL, 2, tagTypedNil, 0, tagNilInterface}, []byte(`"2024-01-01T00:00:00Z"`))
	f.Add([]byte{tagM, 1, 1, 'k', tagTypedNil, 9}, []byte("[1,2"))
	f.Fuzz(func(t *testing.T, data, opened []byte) {
		r := avReader{data: data}
		av := r.value(0)
		exercise[string](t, av, opened)
		exercise[[]byte](t, av, opened)
		exercise[int64](t, av, opened)
		exercise[uint8](t, av, opened)
		exercise[float64](t, av, opened)
		exercise[bool](t, av, opened)
		exercise[time.Time](t, av, opened)
		exercise[*int](t, av, opened)
		exercise[[]string](t, av, opened)
		exercise[map[string]int](t, av, opened)
		exercise[fuzzProfile](t, av, opened)
		exercise[any](t, av, opened)
		exercise[[2]uint16](t, av, opened)
	})
}

// The seeds are in testdata/fuzz too; this keeps the two encodings honest.
func TestFuzzEncodingRoundTrips(t *testing.T) {
	for _, av := range fuzzSeeds() {
		r := avReader{data: avBytes(av)}
		got := r.value(0)
		if len(r.data) != 0 {
			t.Fatalf("%#v: %d bytes left over", av, len(r.data))
		}
		if string(avBytes(got)) != string(avBytes(av)) && !isMap(av) {
			t.Fatalf("%#v decoded as %#v", av, got)
		}
	}
}

func isMap(av types.AttributeValue) bool { _, ok := av.(*types.AttributeValueMemberM); return ok }
