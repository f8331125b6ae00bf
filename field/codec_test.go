package field

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
)

// roundTrip takes v the way a repository does: the pending plaintext is
// sealed (here: kept), stored, loaded and opened again.
func roundTrip[T any](t *testing.T, v T) (T, []byte) {
	t.Helper()
	e := NewEncrypted(v)
	plain, ok, err := e.cell().Pending()
	if err != nil || !ok {
		t.Fatalf("PendingPlaintext of %T: ok=%v err=%v", v, ok, err)
	}
	sealed := bytes.Clone(plain)
	var loaded Encrypted[T]
	if err := loaded.UnmarshalDynamoDBAttributeValue(&types.AttributeValueMemberS{Value: enc.Prefix + "AQ=="}); err != nil {
		t.Fatal(err)
	}
	if err := loaded.cell().Opened(plain); err != nil {
		t.Fatalf("SetOpened(%q) as %T: %v", plain, v, err)
	}
	got, err := loaded.Value()
	if err != nil {
		t.Fatal(err)
	}
	return got, sealed
}

func sealError[T any](v T) error {
	e := NewEncrypted(v)
	_, _, err := e.cell().Pending()
	return err
}

func TestStringAndBytesAreSealedAsTheirBytes(t *testing.T) {
	type SSN string
	type Blob []byte
	for _, s := range []string{"", "123-45-6789", "ünïcødé 🙂 日本語", "nul\x00inside", "not UTF-8 \xff\xfe"} {
		got, sealed := roundTrip(t, s)
		if got != s || string(sealed) != s {
			t.Errorf("string %q: sealed %q, got %q", s, sealed, got)
		}
		named, sealed := roundTrip(t, SSN(s))
		if named != SSN(s) || string(sealed) != s {
			t.Errorf("named string %q: sealed %q, got %q", s, sealed, named)
		}
		b, sealed := roundTrip(t, []byte(s))
		if !bytes.Equal(b, []byte(s)) || string(sealed) != s || b == nil {
			t.Errorf("[]byte %q: sealed %q, got %#v", s, sealed, b)
		}
		nb, _ := roundTrip(t, Blob(s))
		if !bytes.Equal(nb, Blob(s)) {
			t.Errorf("named []byte %q: got %q", s, nb)
		}
	}
	if b, _ := roundTrip[[]byte](t, nil); b == nil || len(b) != 0 {
		t.Errorf("nil []byte loads as %#v, want an empty non-nil slice (documented)", b)
	}
}

func TestIntegersRoundTripExactly(t *testing.T) {
	for _, v := range []int64{math.MinInt64, math.MinInt64 + 1, -1, 0, 1, 1<<53 + 1, math.MaxInt64} {
		if got, _ := roundTrip(t, v); got != v {
			t.Errorf("int64 %d came back as %d", v, got)
		}
	}
	for _, v := range []uint64{0, 1<<53 + 1, math.MaxUint64} {
		if got, _ := roundTrip(t, v); got != v {
			t.Errorf("uint64 %d came back as %d", v, got)
		}
	}
	if got, _ := roundTrip(t, int8(math.MinInt8)); got != math.MinInt8 {
		t.Errorf("int8 min came back as %d", got)
	}
	if got, _ := roundTrip(t, uint32(math.MaxUint32)); got != math.MaxUint32 {
		t.Errorf("uint32 max came back as %d", got)
	}
	if got, _ := roundTrip(t, int(math.MaxInt)); got != math.MaxInt {
		t.Errorf("int max came back as %d", got)
	}
}

func TestFloatsRoundTripBitForBit(t *testing.T) {
	negZero := math.Copysign(0, -1)
	for _, v := range []float64{0, negZero, math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64,
		math.MaxFloat64, -math.MaxFloat64, 0.1, 1.0 / 3, math.Pi, 1e21, 1e-7, 2.2250738585072014e-308} {
		got, sealed := roundTrip(t, v)
		if math.Float64bits(got) != math.Float64bits(v) {
			t.Errorf("float64 %v (sealed %s) came back as %v", v, sealed, got)
		}
	}
	for _, v := range []float32{0, float32(negZero), math.SmallestNonzeroFloat32, math.MaxFloat32, 0.1, 16777217} {
		got, sealed := roundTrip(t, v)
		if math.Float32bits(got) != math.Float32bits(v) {
			t.Errorf("float32 %v (sealed %s) came back as %v", v, sealed, got)
		}
	}
}

func TestNaNAndInfinityFailToSealNamingTheType(t *testing.T) {
	type Reading struct{ Celsius float64 }
	cases := map[string]error{
		"float64 NaN":  sealError(math.NaN()),
		"float64 +Inf": sealError(math.Inf(1)),
		"float32 -Inf": sealError(float32(math.Inf(-1))),
		"in a struct":  sealError(Reading{Celsius: math.NaN()}),
		"in a slice":   sealError([]float64{1, math.Inf(1)}),
	}
	for name, err := range cases {
		if err == nil {
			t.Errorf("%s: sealed without error", name)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "NaN or infinite") || strings.Contains(msg, "+Inf") {
			t.Errorf("%s: message %q should say NaN or infinite without quoting the value", name, msg)
		}
	}
	if err := cases["in a struct"]; !strings.Contains(err.Error(), "field.Reading") {
		t.Errorf("message %q does not name the type", err)
	}
	var unsupported *json.UnsupportedValueError
	if !errors.As(cases["float64 NaN"], &unsupported) {
		t.Error("the encoder's own error is not reachable with errors.As")
	}
}

func TestTimeKeepsInstantAndOffset(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("IST", 5*3600+30*60), time.FixedZone("", -(3*3600 + 45*60))}
	for _, loc := range zones {
		v := time.Date(2024, time.February, 29, 23, 59, 59, 123456789, loc)
		got, _ := roundTrip(t, v)
		if !got.Equal(v) {
			t.Errorf("%v came back as %v", v, got)
		}
		_, wantOff := v.Zone()
		if _, off := got.Zone(); off != wantOff {
			t.Errorf("%v: offset %d, want %d", v, off, wantOff)
		}
	}
	utc, _ := roundTrip(t, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))
	if utc.Location() != time.UTC || !utc.IsZero() {
		t.Errorf("zero time in UTC came back as %v in %v", utc, utc.Location())
	}
	now := time.Now()
	got, _ := roundTrip(t, now)
	if !got.Equal(now) {
		t.Errorf("time.Now %v came back as %v", now, got)
	}
	if got != now.Round(0).In(got.Location()) {
		t.Errorf("monotonic reading should be the only thing dropped: %#v", got)
	}
	lmt := time.FixedZone("LMT", 19*60+32) // Amsterdam's offset before 1937
	for name, v := range map[string]any{
		"time":      time.Date(1900, 1, 1, 0, 0, 0, 0, lmt),
		"in struct": struct{ When time.Time }{time.Date(1900, 1, 1, 0, 0, 0, 0, lmt)},
		"map key":   map[time.Time]int{time.Date(1900, 1, 1, 0, 0, 0, 0, lmt): 1},
		"in any":    []any{"x", time.Date(1900, 1, 1, 0, 0, 0, 0, lmt)},
	} {
		if err := sealError(v); err == nil || !strings.Contains(err.Error(), "offset has seconds") {
			t.Errorf("%s: a zone offset with seconds: %v, want an error", name, err)
		}
	}
	if err := sealError(time.Date(1900, 1, 1, 0, 0, 0, 0, lmt)); err == nil {
		t.Error("time.Time with a zone offset with seconds sealed")
	}
	if err := sealError([]struct{ When *time.Time }{{}}); err != nil {
		t.Errorf("nil *time.Time: %v", err)
	}
	if got, _ := roundTrip(t, time.Date(1900, 1, 1, 0, 0, 0, 0, lmt).UTC()); !got.Equal(time.Date(1900, 1, 1, 0, 0, 0, 0, lmt)) {
		t.Error("the UTC form of a local mean time does not round-trip")
	}
	err := sealError(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))
	if err == nil || !strings.Contains(err.Error(), "time.Time") || !strings.Contains(err.Error(), "year") {
		t.Errorf("year 10000: %v, want an error naming time.Time and the year range", err)
	}
}

type inner struct {
	N    int64
	Tags []string
}

type everything struct {
	Str       string
	Bool      bool
	False     bool
	Int       int64
	Uint      uint64
	Float     float64
	Bytes     []byte
	NilBytes  []byte
	Empty     []int
	Nil       []int
	Array     [3]uint8
	Ptr       *inner
	NilPtr    *inner
	IntPtr    *int
	Map       map[string]inner
	IntKeys   map[int]string
	NilMap    map[string]int
	When      time.Time
	Renamed   string `json:"r"`
	Omitted   string `json:",omitempty"`
	Raw       json.RawMessage
	Unicode   string
	unexposed string //nolint:unused // documents that unexported fields are not sealed
	inner
}

func TestStructsMapsSlicesAndPointersRoundTripExactly(t *testing.T) {
	seven := 7
	v := everything{
		Str: "a\x00b \u2028 <&>", Bool: true, Int: math.MinInt64, Uint: math.MaxUint64, Float: math.Copysign(0, -1),
		Bytes: []byte{0, 0xff}, Empty: []int{}, Array: [3]uint8{1, 2, 3},
		Ptr: &inner{N: 1, Tags: []string{"x"}}, IntPtr: &seven,
		Map:     map[string]inner{"k": {N: math.MaxInt64}, "": {}},
		IntKeys: map[int]string{-1: "minus", 1 << 60: "big"},
		When:    time.Date(2001, 2, 3, 4, 5, 6, 7, time.FixedZone("", 3600)),
		Renamed: "renamed", Raw: json.RawMessage(`{"a":[1,2]}`), Unicode: "🙂\U0010FFFF\uFFFD",
		inner: inner{N: -5, Tags: nil},
	}
	got, sealed := roundTrip(t, v)
	if !got.When.Equal(v.When) {
		t.Fatalf("time %v came back as %v", v.When, got.When)
	}
	got.When = v.When
	if !reflect.DeepEqual(got, v) {
		t.Fatalf("struct came back different:\n got  %#v\n want %#v\n sealed %s", got, v, sealed)
	}
	if got.Empty == nil || got.Nil != nil || got.NilMap != nil || got.NilBytes != nil {
		t.Fatal("nil and empty slices or maps were not kept apart")
	}

	m := map[string][]*inner{"a": {{N: 1}, nil}, "b": nil}
	if gotM, _ := roundTrip(t, m); !reflect.DeepEqual(gotM, m) {
		t.Fatalf("map came back as %#v", gotM)
	}
	for _, b := range []bool{true, false} {
		if got, _ := roundTrip(t, b); got != b {
			t.Fatalf("bool %v came back as %v", b, got)
		}
	}
	var nilPtr *inner
	if got, _ := roundTrip(t, nilPtr); got != nil {
		t.Fatalf("nil pointer came back as %#v", got)
	}
	if got, _ := roundTrip(t, &seven); *got != 7 {
		t.Fatalf("*int came back as %d", *got)
	}
}

func TestUnexportedFieldsAreNotSealed(t *testing.T) {
	got, sealed := roundTrip(t, everything{unexposed: "dropped"})
	if got.unexposed != "" || bytes.Contains(sealed, []byte("dropped")) {
		t.Fatal("an unexported field was sealed; the documented encoding ignores them")
	}
}

func TestInterfacesKeepEveryDigit(t *testing.T) {
	got, _ := roundTrip[any](t, map[string]any{"big": int64(1<<53 + 1), "list": []any{"x", true, nil}})
	m, ok := got.(map[string]any)
	if !ok {
		t.Fatalf("any came back as %T", got)
	}
	if m["big"] != json.Number("9007199254740993") {
		t.Fatalf("number in an interface came back as %#v, want json.Number with every digit", m["big"])
	}
	if !reflect.DeepEqual(m["list"], []any{"x", true, nil}) {
		t.Fatalf("list came back as %#v", m["list"])
	}
}

func TestInvalidUTF8InsideJSONFailsToSeal(t *testing.T) {
	cases := map[string]error{
		"struct field": sealError(inner{Tags: []string{"ok", "bad\xff"}}),
		"map key":      sealError(map[string]int{"k\xc3": 1}),
		"in any":       sealError[any]("x\x80"),
	}
	for name, err := range cases {
		if err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
			t.Errorf("%s: %v, want a UTF-8 error", name, err)
		}
	}
	// U+FFFD itself and a backslash followed by "ufffd" are fine.
	for _, s := range []string{"\uFFFD", `\ufffd`, `\\ufffd`} {
		if got, _ := roundTrip(t, []string{s}); got[0] != s {
			t.Errorf("%q came back as %q", s, got[0])
		}
	}
}

func TestEncryptedInsideEncryptedIsRefused(t *testing.T) {
	type Nested struct{ Inner Encrypted[string] }
	err := sealError(Nested{Inner: NewEncrypted("secret")})
	if err == nil || !strings.Contains(err.Error(), "another Encrypted") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("err = %v", err)
	}
	if err := checkType(reflect.TypeFor[Encrypted[map[string][]Encrypted[int]]]()); err == nil || !strings.Contains(err.Error(), "field.Encrypted[map[string][]field.Encrypted[int]]") {
		t.Fatalf("CheckType of a map of Encrypted: %v", err)
	}
	if err := checkType(reflect.TypeFor[Encrypted[everything]]()); err != nil {
		t.Fatalf("checkType(everything) = %v", err)
	}
	type Recursive struct{ Next *Recursive }
	if err := checkType(reflect.TypeFor[Encrypted[Recursive]]()); err != nil {
		t.Fatalf("checkType(recursive) = %v", err)
	}
	if err := checkType(reflect.TypeFor[everything]()); err == nil {
		t.Fatal("CheckType accepted a type that is not an Encrypted")
	}
}

func TestOpenedBytesThatDoNotDecodeAreMalformedWithoutQuotingThem(t *testing.T) {
	type Card struct{ Number int8 }
	cases := map[string]struct {
		open func([]byte) error
		in   string
	}{
		"syntax": {func(b []byte) error {
			var e Encrypted[Card]
			e.state = &state[Card]{sealed: &sealedForm{stored: "x"}}
			return e.cell().Opened(b)
		}, `{"Number": 4111x}`},
		"overflow": {func(b []byte) error {
			var e Encrypted[Card]
			e.state = &state[Card]{sealed: &sealedForm{stored: "x"}}
			return e.cell().Opened(b)
		}, `{"Number": 4111}`},
		"trailing": {func(b []byte) error {
			var e Encrypted[int]
			e.state = &state[int]{sealed: &sealedForm{stored: "x"}}
			return e.cell().Opened(b)
		}, `4111 4111`},
		"time": {func(b []byte) error {
			var e Encrypted[time.Time]
			e.state = &state[time.Time]{sealed: &sealedForm{stored: "x"}}
			return e.cell().Opened(b)
		}, `"4111-99"`},
	}
	for name, c := range cases {
		err := c.open([]byte(c.in))
		if !errors.Is(err, enc.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
			continue
		}
		if strings.Contains(err.Error(), "4111") {
			t.Errorf("%s: message %q quotes the plaintext", name, err)
		}
	}
}

// A struct JSON sees nothing of would be sealed as {} and lose its value.
func TestStructWithoutJSONFieldsIsRefused(t *testing.T) {
	type hidden struct{ v string }
	type dashed struct {
		V string `json:"-"`
	}
	type inner struct{ V string }
	type embeds struct{ inner }
	for name, typ := range map[string]reflect.Type{
		"unexported only": reflect.TypeFor[Encrypted[hidden]](),
		"json dash only":  reflect.TypeFor[Encrypted[dashed]](),
		"inside a slice":  reflect.TypeFor[Encrypted[[]hidden]](),
	} {
		if err := checkType(typ); err == nil || !strings.Contains(err.Error(), "no field JSON can see") {
			t.Errorf("%s: CheckType = %v, want a refusal", name, err)
		}
	}
	for name, typ := range map[string]reflect.Type{
		"embedded exported": reflect.TypeFor[Encrypted[embeds]](),
		"empty struct":      reflect.TypeFor[Encrypted[struct{}]](),
		"time":              reflect.TypeFor[Encrypted[time.Time]](),
	} {
		if err := checkType(typ); err != nil {
			t.Errorf("%s: CheckType = %v, want nil", name, err)
		}
	}
	e := NewEncrypted(hidden{v: "secret"})
	if _, ok, err := e.cell().Pending(); ok || err == nil {
		t.Fatalf("sealing a struct JSON cannot see: ok=%v err=%v", ok, err)
	}
}
