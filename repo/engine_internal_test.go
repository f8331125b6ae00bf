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
	ms, err := r.marshalAll(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	if n := keys.Generates.Load(); n != 3 {
		t.Fatalf("%d GenerateDataKey calls for 18 values of 3 tenants, want 3", n)
	}
	got, err := r.unmarshalAll(ctx, ms)
	if err != nil {
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

func TestBoundPaths(t *testing.T) {
	p := paths{}.field("cards").index(3).field("number")
	if p.attr != "cards[3].number" || p.bound != "cards[].number" {
		t.Fatalf("%+v", p)
	}
	q := paths{}.field("odd.name").field(`x"y`)
	if q.bound != `["odd.name"]["x\"y"]` {
		t.Fatalf("%+v", q)
	}
	if r := (paths{}).field("m").field("[]"); r.bound != `m["[]"]` {
		t.Fatalf("%+v", r)
	}
	if m := (paths{}).field("phones").key(reflect.ValueOf("home")); m.attr != "phones.home" || m.bound != `phones["home"]` {
		t.Fatalf("%+v", m)
	}
}
