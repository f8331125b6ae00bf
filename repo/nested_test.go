package repo_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

type NestedCard struct {
	Number field.Encrypted[string] `dynamodbav:"number" enc:"pii"`
	Label  string                  `dynamodbav:"label"`
}

type NestedBase struct {
	BaseSecret field.Encrypted[string] `dynamodbav:"base_secret" enc:"pii"`
	BasePin    field.Encrypted[int]    `dynamodbav:"base_pin" enc:"pii"`
}

type NestedPtrBase struct {
	PtrSecret field.Encrypted[string] `dynamodbav:"ptr_secret" enc:"pii"`
	PtrNote   field.Encrypted[string] `dynamodbav:"ptr_note" enc:"other"`
}

type NestedProfile struct {
	Name string
	Age  int
}

type NestedWallet struct {
	PK string `dynamodbav:"pk" repo:"hash"`
	NestedBase
	*NestedPtrBase
	Primary       NestedCard                                      `dynamodbav:"primary"`
	Backup        *NestedCard                                     `dynamodbav:"backup"`
	Missing       *NestedCard                                     `dynamodbav:"missing"`
	Cards         []NestedCard                                    `dynamodbav:"cards"`
	CardPtrs      []*NestedCard                                   `dynamodbav:"card_ptrs"`
	Fixed         [2]NestedCard                                   `dynamodbav:"fixed"`
	ByName        map[string]NestedCard                           `dynamodbav:"by_name"`
	ByNamePtr     map[string]*NestedCard                          `dynamodbav:"by_name_ptr"`
	Pins          []field.Encrypted[int]                          `dynamodbav:"pins" enc:"pii"`
	Notes         map[string]field.Encrypted[string]              `dynamodbav:"notes" enc:"other"`
	Deep          map[string][]map[string]field.Encrypted[string] `dynamodbav:"deep" enc:"pii"`
	PtrEnc        *field.Encrypted[string]                        `dynamodbav:"ptr_enc" enc:"pii"`
	NestedProfile field.Encrypted[NestedProfile]                  `dynamodbav:"profile" enc:"other"`
	Absent        field.Encrypted[string]                         `dynamodbav:"absent,omitempty" enc:"pii"`
}

// nestedSecret returns a marker that must never appear in stored output.
func nestedSecret(i int) string { return fmt.Sprintf("PLAINTEXT-%02d", i) }

func newNestedWallet() NestedWallet {
	n := 0
	next := func() string { n++; return nestedSecret(n) }
	card := func() NestedCard { return NestedCard{Number: field.NewEncrypted(next()), Label: "label"} }
	ptrEnc := field.NewEncrypted(next())
	backup := card()
	p1, p2 := card(), card()
	m1, m2 := card(), card()
	return NestedWallet{
		PK:            "W#1",
		NestedBase:    NestedBase{BaseSecret: field.NewEncrypted(next()), BasePin: field.NewEncrypted(4242)},
		NestedPtrBase: &NestedPtrBase{PtrSecret: field.NewEncrypted(next()), PtrNote: field.NewEncrypted(next())},
		Primary:       card(),
		Backup:        &backup,
		Cards:         []NestedCard{card(), card()},
		CardPtrs:      []*NestedCard{&p1, nil, &p2},
		Fixed:         [2]NestedCard{card(), card()},
		ByName:        map[string]NestedCard{"a": card(), "b": card(), "c": card()},
		ByNamePtr:     map[string]*NestedCard{"a": &m1, "b": &m2},
		Pins:          []field.Encrypted[int]{field.NewEncrypted(1111), field.NewEncrypted(2222)},
		Notes:         map[string]field.Encrypted[string]{"x": field.NewEncrypted(next()), "y": field.NewEncrypted(next()), "z": {}},
		Deep: map[string][]map[string]field.Encrypted[string]{
			"k": {{"a": field.NewEncrypted(next()), "b": field.NewEncrypted(next())}, nil, {"c": field.NewEncrypted(next())}},
		},
		PtrEnc:        &ptrEnc,
		NestedProfile: field.NewEncrypted(NestedProfile{Name: next(), Age: 4343}),
	}
}

// nestedWalletValues lists every encrypted value of w by path, opening each.
func nestedWalletValues(t *testing.T, w NestedWallet) map[string]any {
	t.Helper()
	out := map[string]any{}
	add := func(path string, v any, err error) {
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out[path] = v
	}
	str := func(path string, e field.Encrypted[string]) { v, err := e.Value(); add(path, v, err) }
	str("base_secret", w.BaseSecret)
	pin, err := w.BasePin.Value()
	add("base_pin", pin, err)
	if w.NestedPtrBase == nil {
		t.Fatal("embedded pointer lost")
	}
	str("ptr_secret", w.PtrSecret)
	str("ptr_note", w.PtrNote)
	str("primary", w.Primary.Number)
	str("backup", w.Backup.Number)
	for i, c := range w.Cards {
		str(fmt.Sprint("cards", i), c.Number)
	}
	for i, c := range w.CardPtrs {
		if c != nil {
			str(fmt.Sprint("card_ptrs", i), c.Number)
		}
	}
	for i, c := range w.Fixed {
		str(fmt.Sprint("fixed", i), c.Number)
	}
	for k, c := range w.ByName {
		str("by_name."+k, c.Number)
	}
	for k, c := range w.ByNamePtr {
		str("by_name_ptr."+k, c.Number)
	}
	for i, p := range w.Pins {
		v, err := p.Value()
		add(fmt.Sprint("pins", i), v, err)
	}
	for k, e := range w.Notes {
		str("notes."+k, e)
	}
	for k, list := range w.Deep {
		for i, m := range list {
			for mk, e := range m {
				str(fmt.Sprintf("deep.%s[%d].%s", k, i, mk), e)
			}
		}
	}
	str("ptr_enc", *w.PtrEnc)
	prof, err := w.NestedProfile.Value()
	add("profile", prof, err)
	str("absent", w.Absent)
	return out
}

// nestedFindPlaintext returns the path of the first attribute value (or map key)
// that contains one of the markers or the plaintext numbers.
func nestedFindPlaintext(av types.AttributeValue, path string) string {
	bad := func(s string) bool {
		return strings.Contains(s, "PLAINTEXT") || strings.Contains(s, "4242") || strings.Contains(s, "4343") ||
			strings.Contains(s, "1111") || strings.Contains(s, "2222")
	}
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		if bad(v.Value) {
			return path
		}
	case *types.AttributeValueMemberN:
		if bad(v.Value) {
			return path
		}
	case *types.AttributeValueMemberB:
		if bad(string(v.Value)) {
			return path
		}
	case *types.AttributeValueMemberSS:
		for _, s := range v.Value {
			if bad(s) {
				return path
			}
		}
	case *types.AttributeValueMemberL:
		for i, e := range v.Value {
			if p := nestedFindPlaintext(e, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	case *types.AttributeValueMemberM:
		for k, e := range v.Value {
			if bad(k) {
				return path + "." + k
			}
			if p := nestedFindPlaintext(e, path+"."+k); p != "" {
				return p
			}
		}
	}
	return ""
}

// nestedCountSealed counts the ENC: strings in an attribute value tree.
func nestedCountSealed(av types.AttributeValue) int {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		if enc.IsEncrypted(v.Value) {
			return 1
		}
	case *types.AttributeValueMemberL:
		n := 0
		for _, e := range v.Value {
			n += nestedCountSealed(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 0
		for _, e := range v.Value {
			n += nestedCountSealed(e)
		}
		return n
	}
	return 0
}

func newNestedWalletRepo(t *testing.T, opts ...repo.Option) (*repo.Repo[NestedWallet], *enctest.Provider) {
	t.Helper()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	reg.MustRegister("other", enc.Spec{KeyID: "alias/other", Context: map[string]string{"purpose": "notes"}})
	keys := enctest.New()
	r, err := repo.New[NestedWallet]("wallets", append([]repo.Option{repo.WithRegistry(reg), repo.WithEncryptor(enc.New(keys))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r, keys
}

func TestNestedEncryptedValuesAreAllSealedAndOpened(t *testing.T) {
	ctx := context.Background()
	r, keys := newNestedWalletRepo(t)
	in := newNestedWallet()
	want := nestedWalletValues(t, in)
	backupBefore, cardsBefore := in.Backup, &in.Cards[0]

	m, err := r.Marshal(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	whole := &types.AttributeValueMemberM{Value: m}
	if p := nestedFindPlaintext(whole, "item"); p != "" {
		t.Fatalf("plaintext reached the marshalled item at %s: %#v", p, m)
	}
	// Every present value is sealed: all but "absent" and "notes.z".
	if n := nestedCountSealed(whole); n != len(want)-2 {
		t.Fatalf("%d sealed values in the output, want %d", n, len(want)-2)
	}
	if _, ok := m["absent"]; ok {
		t.Fatal("an absent value with omitempty was written")
	}
	if n := keys.Generates.Load(); n != 2 {
		t.Fatalf("%d GenerateDataKey calls for two specs, want 2", n)
	}

	// The caller's item, and everything it points to, is unchanged.
	if in.Backup != backupBefore || &in.Cards[0] != cardsBefore {
		t.Fatal("Marshal replaced the caller's pointers or slices")
	}
	if got := nestedWalletValues(t, in); !reflect.DeepEqual(got, want) {
		t.Fatalf("Marshal changed the caller's values:\n got %v\nwant %v", got, want)
	}
	for path, sealed := range map[string]bool{
		"base_secret": in.BaseSecret.IsSealed(), "ptr_secret": in.PtrSecret.IsSealed(),
		"backup": in.Backup.Number.IsSealed(), "cards0": in.Cards[0].Number.IsSealed(),
		"card_ptrs0": in.CardPtrs[0].Number.IsSealed(), "by_name_ptr.a": in.ByNamePtr["a"].Number.IsSealed(),
		"by_name.a": in.ByName["a"].Number.IsSealed(), "notes.x": in.Notes["x"].IsSealed(),
		"deep": in.Deep["k"][0]["a"].IsSealed(), "ptr_enc": in.PtrEnc.IsSealed(), "pins0": in.Pins[0].IsSealed(),
	} {
		if sealed {
			t.Errorf("Marshal sealed the caller's %s", path)
		}
	}

	out, err := r.Unmarshal(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if got := nestedWalletValues(t, out); !reflect.DeepEqual(got, want) {
		t.Fatalf("opened values differ:\n got %v\nwant %v", got, want)
	}
	if n := keys.Decrypts.Load(); n != 2 {
		t.Fatalf("%d Decrypt calls for two data keys, want 2", n)
	}
	if out.Absent.IsPresent() || out.Missing != nil || out.CardPtrs[1] != nil {
		t.Fatal("absent values came back present")
	}

	// Written back unchanged: the same stored strings and no KMS call.
	again, err := r.Marshal(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, m) {
		t.Fatal("an unchanged loaded item did not marshal back exactly as stored")
	}
	if n := keys.Generates.Load(); n != 2 {
		t.Fatalf("re-marshalling unchanged values called GenerateDataKey (%d calls in all)", n)
	}
}

func TestNestedValuesStaySealedInWriteOnlyMode(t *testing.T) {
	ctx := context.Background()
	r, keys := newNestedWalletRepo(t)
	m, err := r.Marshal(ctx, newNestedWallet())
	if err != nil {
		t.Fatal(err)
	}
	ingest, _ := newNestedWalletRepo(t, repo.WithMode(enc.WriteOnly), repo.WithEncryptor(enc.New(keys)))
	out, err := ingest.Unmarshal(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if n := keys.Decrypts.Load(); n != 0 {
		t.Fatalf("WriteOnly made %d Decrypt calls", n)
	}
	for name, e := range map[string]field.Encrypted[string]{
		"base_secret": out.BaseSecret, "ptr_note": out.PtrNote, "backup": out.Backup.Number,
		"cards1": out.Cards[1].Number, "by_name.b": out.ByName["b"].Number, "by_name_ptr.b": out.ByNamePtr["b"].Number,
		"notes.y": out.Notes["y"], "deep": out.Deep["k"][2]["c"], "ptr_enc": *out.PtrEnc,
	} {
		if _, err := e.Value(); !errors.Is(err, enc.ErrWriteOnly) {
			t.Errorf("%s: Value() = %v, want ErrWriteOnly", name, err)
		}
		if !e.IsSealed() || !enc.IsEncrypted(e.Ciphertext()) {
			t.Errorf("%s: not held sealed", name)
		}
	}
	again, err := ingest.Marshal(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, m) {
		t.Fatal("WriteOnly did not write loaded values back as stored")
	}
}

func TestInterfaceFieldHoldingEncryptedFailsClosed(t *testing.T) {
	type Loose struct {
		PK    string         `dynamodbav:"pk" repo:"hash"`
		Extra any            `dynamodbav:"extra"`
		Attrs map[string]any `dynamodbav:"attrs"`
	}
	r, err := repo.New[Loose]("loose", repo.WithRegistry(enc.NewRegistry()), repo.WithEncryptor(enc.New(enctest.New())))
	if err != nil {
		t.Fatalf("interface fields are allowed: %v", err)
	}
	ctx := context.Background()
	if _, err := r.Marshal(ctx, Loose{PK: "a", Attrs: map[string]any{"n": 1, "s": "x"}}); err != nil {
		t.Fatalf("plain values in interface fields: %v", err)
	}
	for name, item := range map[string]Loose{
		"any":           {PK: "a", Extra: field.NewEncrypted("PLAINTEXT-iface")},
		"struct in any": {PK: "a", Extra: NestedCard{Number: field.NewEncrypted("PLAINTEXT-iface")}},
		"map of any":    {PK: "a", Attrs: map[string]any{"ssn": field.NewEncrypted("PLAINTEXT-iface")}},
	} {
		_, err := r.Marshal(ctx, item)
		if !errors.Is(err, enc.ErrNotSealed) {
			t.Errorf("%s: err = %v, want ErrNotSealed", name, err)
			continue
		}
		if strings.Contains(err.Error(), "PLAINTEXT") {
			t.Errorf("%s: error quotes the plaintext: %v", name, err)
		}
		if !strings.Contains(err.Error(), "interface") {
			t.Errorf("%s: error %q does not point at the interface field", name, err)
		}
	}
}

func TestNewRejectsEncryptedInsideEncrypted(t *testing.T) {
	type Outer struct {
		PK    string                        `dynamodbav:"pk" repo:"hash"`
		Cards field.Encrypted[[]NestedCard] `dynamodbav:"cards" enc:"pii"`
	}
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	_, err := repo.New[Outer]("t", repo.WithRegistry(reg), repo.WithEncryptor(enc.New(enctest.New())))
	if err == nil || !strings.Contains(err.Error(), "Outer.Cards") || !strings.Contains(err.Error(), "another Encrypted") {
		t.Fatalf("err = %v, want a rejection naming Outer.Cards", err)
	}
}

type NestedEmbeddedValue struct {
	PK                      string `dynamodbav:"pk" repo:"hash"`
	field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
}

type NestedEmbeddedPointer struct {
	PK                    string `dynamodbav:"pk" repo:"hash"`
	*field.Encrypted[int] `enc:"pii"`
}

type NestedHoldsEmbedded struct {
	PK    string              `dynamodbav:"pk" repo:"hash"`
	Inner NestedEmbeddedValue `dynamodbav:"inner"`
}

func TestNewRejectsEmbeddedEncrypted(t *testing.T) {
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	opts := []repo.Option{repo.WithRegistry(reg), repo.WithEncryptor(enc.New(enctest.New()))}
	check := func(name string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "embedded") {
			t.Errorf("%s: err = %v, want a rejection naming %s", name, err, want)
		}
	}
	_, err := repo.New[NestedEmbeddedValue]("t", opts...)
	check("value", err, "EmbeddedValue.Encrypted")
	_, err = repo.New[NestedEmbeddedPointer]("t", opts...)
	check("pointer", err, "EmbeddedPointer.Encrypted")
	_, err = repo.New[NestedHoldsEmbedded]("t", opts...)
	check("nested", err, "EmbeddedValue.Encrypted")
}

func TestLegacyPlaintextInEachMode(t *testing.T) {
	ctx := context.Background()
	legacy := map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "A"}, "sk": &types.AttributeValueMemberN{Value: "1"},
		"ssn": &types.AttributeValueMemberS{Value: "123-45-6789"},
	}
	for _, mode := range []enc.Mode{enc.ReadWrite, enc.WriteOnly, enc.ReadOnly} {
		t.Run(mode.String(), func(t *testing.T) {
			r, keys := newRepo(t, repo.WithMode(mode))
			a, err := r.Unmarshal(ctx, legacy)
			if err != nil {
				t.Fatal(err)
			}
			// It was never encrypted, so every mode reads it, without KMS.
			if v, err := a.SSN.Value(); err != nil || v != "123-45-6789" {
				t.Fatalf("Value() = %q, %v", v, err)
			}
			m, err := r.Marshal(ctx, a)
			if mode == enc.ReadOnly {
				// Writing it back would need sealing.
				if !errors.Is(err, enc.ErrReadOnly) {
					t.Fatalf("ReadOnly write-back of a legacy value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := m["ssn"].(*types.AttributeValueMemberS).Value; !enc.IsEncrypted(s) || strings.Contains(s, "6789") {
				t.Fatalf("legacy value written back as %q", s)
			}
			if keys.Decrypts.Load() != 0 {
				t.Fatal("a legacy value cost a Decrypt")
			}
		})
	}
}
