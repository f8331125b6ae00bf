package repo

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
)

type tenantItem struct {
	PK     string                  `dynamodbav:"pk" repo:"hash"`
	Tenant string                  `dynamodbav:"tenant"`
	A      field.Encrypted[string] `dynamodbav:"a" enc:"t"`
	B      field.Encrypted[string] `dynamodbav:"b" enc:"t"`
}

// One call over many items makes one GenerateDataKey per tenant and, on the
// way back, one Decrypt per tenant.
func TestMarshalAllSharesDataKeysPerTenant(t *testing.T) {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("t", enc.Spec{KeyID: "k", Version: enc.Version2, ContextFrom: map[string]string{"tenant": "tenant"}})
	keys := enctest.New()
	r, err := New[tenantItem]("t", WithRegistry(reg), WithEncryptor(enc.New(keys)))
	if err != nil {
		t.Fatal(err)
	}
	var items []tenantItem
	for i := range 9 {
		items = append(items, tenantItem{PK: fmt.Sprint(i), Tenant: fmt.Sprintf("tenant-%d", i%3),
			A: field.NewEncrypted(fmt.Sprint("a", i)), B: field.NewEncrypted(fmt.Sprint("b", i))})
	}
	ms, _, err := r.marshalItems(ctx, "test", items, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := keys.Generates.Load(); n != 3 {
		t.Fatalf("%d GenerateDataKey calls for 18 values of 3 tenants, want 3", n)
	}
	got, errs := r.openItems(ctx, r.encryptor, "test", ms, false)
	if err := joinErrors(errs); err != nil {
		t.Fatal(err)
	}
	if n := keys.Decrypts.Load(); n != 3 {
		t.Fatalf("%d Decrypt calls for 3 data keys, want 3", n)
	}
	for i, it := range got {
		a, _ := it.A.Value()
		b, _ := it.B.Value()
		if a != fmt.Sprint("a", i) || b != fmt.Sprint("b", i) {
			t.Fatalf("item %d opened to %q %q", i, a, b)
		}
	}
}

type boundCard struct {
	Number field.Encrypted[string] `dynamodbav:"number" enc:"t"`
}

type boundItem struct {
	PK     string                             `dynamodbav:"pk" repo:"hash"`
	Cards  []boundCard                        `dynamodbav:"cards"`
	Odd    field.Encrypted[string]            `dynamodbav:"odd.name" enc:"t"`
	Inner  struct{ X boundQuoted }            `dynamodbav:"m"`
	Phones map[string]field.Encrypted[string] `dynamodbav:"phones" enc:"t"`
}

type boundQuoted struct {
	V field.Encrypted[string] `dynamodbav:"[]" enc:"t"`
}

// Paths for messages keep list positions; bound paths leave them out and
// quote names that look like path syntax, so that no two collide.
func TestBoundPaths(t *testing.T) {
	reg := enc.NewRegistry()
	reg.MustRegister("t", enc.Spec{KeyID: "k"})
	r, err := New[boundItem]("t", WithRegistry(reg), WithEncryptor(enc.New(enctest.New())))
	if err != nil {
		t.Fatal(err)
	}
	item := boundItem{PK: "p", Cards: make([]boundCard, 4), Odd: field.NewEncrypted("o"),
		Phones: map[string]field.Encrypted[string]{"home": field.NewEncrypted("h")}}
	item.Cards[3].Number = field.NewEncrypted("n")
	item.Inner.X.V = field.NewEncrypted("v")
	got := map[string]string{}
	w := walker{visit: func(fd found) error {
		got[fd.path] = fd.bound
		return nil
	}}
	if err := w.walkStruct(reflect.ValueOf(&item).Elem(), r.root, "", ""); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"cards[0].number": "cards[].number", "cards[1].number": "cards[].number",
		"cards[2].number": "cards[].number", "cards[3].number": "cards[].number",
		"odd.name": `["odd.name"]`, "m.X.[]": `m.X["[]"]`, "phones.home": `phones["home"]`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("paths %v, want %v", got, want)
	}
}
