package field_test

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/internal/cell"
)

func TestAbsentValueIsNullAndOmitEmptyDropsIt(t *testing.T) {
	type Item struct {
		PK   string                  `dynamodbav:"pk"`
		SSN  field.Encrypted[string] `dynamodbav:"ssn"`
		Card field.Encrypted[int64]  `dynamodbav:"card,omitempty"`
	}
	m, err := attributevalue.MarshalMap(Item{PK: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m["ssn"].(*types.AttributeValueMemberNULL); !ok {
		t.Fatalf("absent ssn marshals as %#v, want NULL", m["ssn"])
	}
	// attributevalue only drops a NULL that a Marshaler returned when it is
	// told to; repositories tell it to.
	if _, ok := m["card"].(*types.AttributeValueMemberNULL); !ok {
		t.Fatalf("absent card with omitempty and default options marshals as %#v, want NULL", m["card"])
	}
	omitting, err := attributevalue.MarshalMapWithOptions(Item{PK: "a"}, func(o *attributevalue.EncoderOptions) { o.OmitNullAttributeValues = true })
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := omitting["card"]; ok {
		t.Fatalf("absent card with omitempty marshals as %#v, want no attribute", omitting["card"])
	}
	if _, ok := omitting["ssn"].(*types.AttributeValueMemberNULL); !ok {
		t.Fatalf("absent ssn without omitempty marshals as %#v, want NULL", omitting["ssn"])
	}

	var loaded Item
	m["card"] = &types.AttributeValueMemberNULL{Value: true}
	if err := attributevalue.UnmarshalMap(m, &loaded); err != nil {
		t.Fatal(err)
	}
	if loaded.SSN.IsPresent() || loaded.Card.IsPresent() {
		t.Fatal("NULL loaded as a present value")
	}
	if v, err := loaded.SSN.Value(); v != "" || err != nil {
		t.Fatalf("absent Value() = %q, %v", v, err)
	}
	// A missing attribute leaves the field absent too.
	if err := attributevalue.UnmarshalMap(map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "a"}}, &loaded); err != nil {
		t.Fatal(err)
	}
	if loaded.SSN.IsPresent() {
		t.Fatal("missing attribute loaded as present")
	}
}

func TestSealedValueLoadsSealedAndMarshalsBackAsStored(t *testing.T) {
	const stored = enc.Prefix + "AQACAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	var e field.Encrypted[int]
	if err := e.UnmarshalDynamoDBAttributeValue(&types.AttributeValueMemberS{Value: stored}); err != nil {
		t.Fatal(err)
	}
	if !e.IsSealed() || e.Ciphertext() != stored {
		t.Fatalf("IsSealed %v, Ciphertext %q", e.IsSealed(), e.Ciphertext())
	}
	if _, err := e.Value(); !errors.Is(err, field.ErrSealed) {
		t.Fatalf("Value() of an unopened value: %v", err)
	}
	av, err := e.MarshalDynamoDBAttributeValue()
	if err != nil || av.(*types.AttributeValueMemberS).Value != stored {
		t.Fatalf("marshal back: %#v, %v", av, err)
	}
}

func TestNewValueRefusesToMarshal(t *testing.T) {
	type Item struct {
		Secret field.Encrypted[map[string]int] `dynamodbav:"s"`
	}
	_, err := attributevalue.MarshalMap(Item{Secret: field.NewEncrypted(map[string]int{"pin": 4321})})
	if !errors.Is(err, enc.ErrNotSealed) || strings.Contains(err.Error(), "4321") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "map[string]int") {
		t.Fatalf("err %q does not name the type", err)
	}
}

// legacyCase loads one unencrypted attribute into an Encrypted and checks
// the value, or that it fails with ErrMalformed without quoting the value.
type legacyCase struct {
	name string
	av   types.AttributeValue
	load func(types.AttributeValue) (any, error)
	want any // nil: must fail
}

func loadAs[T any](av types.AttributeValue) (any, error) {
	var e field.Encrypted[T]
	if err := e.UnmarshalDynamoDBAttributeValue(av); err != nil {
		return nil, err
	}
	if e.IsSealed() {
		return nil, errors.New("legacy value loaded as sealed")
	}
	return e.Value()
}

func TestLegacyPlaintextLoadsAsAPlainFieldWould(t *testing.T) {
	type Profile struct {
		Name string `dynamodbav:"name"`
		Age  int    `dynamodbav:"age"`
	}
	when := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	S := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	N := func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
	B := func(v string) types.AttributeValue { return &types.AttributeValueMemberB{Value: []byte(v)} }
	cases := []legacyCase{
		{"string from S", S("123-45-6789"), loadAs[string], "123-45-6789"},
		{"string from N", N("4111"), loadAs[string], "4111"},
		{"string from B", B("x"), loadAs[string], nil},
		{"[]byte from B", B("\x00\xff"), loadAs[[]byte], []byte("\x00\xff")},
		{"[]byte from S", S("abc"), loadAs[[]byte], []byte("abc")},
		{"int64 from N", N("-9223372036854775808"), loadAs[int64], int64(math.MinInt64)},
		{"int64 from S", S("4111"), loadAs[int64], nil},
		{"int8 overflow", N("4111"), loadAs[int8], nil},
		{"uint64 from N", N("18446744073709551615"), loadAs[uint64], uint64(math.MaxUint64)},
		{"float64 from N", N("5e-324"), loadAs[float64], math.SmallestNonzeroFloat64},
		{"bool from BOOL", &types.AttributeValueMemberBOOL{Value: true}, loadAs[bool], true},
		{"time from S", S("2020-01-02T03:04:05Z"), loadAs[time.Time], when},
		{"time from N", N("1577934245"), loadAs[time.Time], when},
		{"time from bad S", S("4111-99"), loadAs[time.Time], nil},
		{"struct from M", &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"name": S("Ann"), "age": N("41")}}, loadAs[Profile], Profile{Name: "Ann", Age: 41}},
		{"struct from S", S(`{"name":"Ann"}`), loadAs[Profile], nil},
		{"[]string from SS", &types.AttributeValueMemberSS{Value: []string{"a", "b"}}, loadAs[[]string], []string{"a", "b"}},
		{"[]int from L", &types.AttributeValueMemberL{Value: []types.AttributeValue{N("1"), N("2")}}, loadAs[[]int], []int{1, 2}},
		{"map from M", &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": N("4111")}}, loadAs[map[string]int], map[string]int{"k": 4111}},
		{"map from N", N("4111"), loadAs[map[string]int], nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.load(c.av)
			if c.want == nil {
				if !errors.Is(err, enc.ErrMalformed) {
					t.Fatalf("got %#v, %v; want ErrMalformed", got, err)
				}
				if strings.Contains(err.Error(), "4111") || strings.Contains(err.Error(), "Ann") {
					t.Fatalf("message %q quotes the stored value", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tm, ok := got.(time.Time); ok {
				if !tm.Equal(c.want.(time.Time)) {
					t.Fatalf("got %v, want %v", tm, c.want)
				}
				return
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %#v, want %#v", got, c.want)
			}
		})
	}
}

func TestLegacyValueIsSealedOnNextWrite(t *testing.T) {
	var e field.Encrypted[string]
	if err := e.UnmarshalDynamoDBAttributeValue(&types.AttributeValueMemberS{Value: "plain"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.MarshalDynamoDBAttributeValue(); !errors.Is(err, enc.ErrNotSealed) {
		t.Fatalf("a legacy value marshals without being sealed: %v", err)
	}
	plain, ok, err := cell.Of(&e).Pending()
	if err != nil || !ok || string(plain) != "plain" {
		t.Fatalf("PendingPlaintext = %q, %v, %v", plain, ok, err)
	}
}

func TestBrokenAttributeValuesAreMalformed(t *testing.T) {
	deep := types.AttributeValue(&types.AttributeValueMemberN{Value: "1"})
	for range 40 {
		deep = &types.AttributeValueMemberL{Value: []types.AttributeValue{deep}}
	}
	for name, av := range map[string]types.AttributeValue{
		"typed nil S":     (*types.AttributeValueMemberS)(nil),
		"typed nil NULL":  (*types.AttributeValueMemberNULL)(nil),
		"typed nil in L":  &types.AttributeValueMemberL{Value: []types.AttributeValue{(*types.AttributeValueMemberN)(nil)}},
		"typed nil in M":  &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"a": (*types.AttributeValueMemberM)(nil)}},
		"unknown member":  &types.UnknownUnionMember{Tag: "X"},
		"nested too deep": deep,
	} {
		// The item still loads; the value says why it is not there, and
		// a repository reports it with the item's key and the path.
		var e field.Encrypted[[]any]
		if err := e.UnmarshalDynamoDBAttributeValue(av); err != nil {
			t.Errorf("%s: %v, want the value to carry the error", name, err)
		}
		if _, err := e.Value(); !errors.Is(err, enc.ErrMalformed) {
			t.Errorf("%s: Value() = %v, want ErrMalformed", name, err)
		}
		if _, err := e.MarshalDynamoDBAttributeValue(); !errors.Is(err, enc.ErrMalformed) {
			t.Errorf("%s: written back: %v, want ErrMalformed", name, err)
		}
	}
	var e field.Encrypted[string]
	if err := e.UnmarshalDynamoDBAttributeValue(nil); err != nil || e.IsPresent() {
		t.Fatalf("nil attribute: %v, present %v; want absent", err, e.IsPresent())
	}
}

func TestCopiesAreIndependent(t *testing.T) {
	a := field.NewEncrypted("one")
	b := a
	b.Set("two")
	if v, _ := a.Value(); v != "one" {
		t.Fatalf("Set on a copy changed the original to %q", v)
	}
}
