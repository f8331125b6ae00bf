package enc_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
)

var tenantSpec = enc.Spec{
	KeyID:       "alias/test",
	Context:     map[string]string{"purpose": "pii"},
	ContextFrom: map[string]string{"tenant": "tenant_id"},
}

func tenant(id string) map[string]string { return map[string]string{"tenant": id} }

func TestContextFromIsMergedAndChecked(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	var seen []map[string]string
	keys.Fail = func(_ string, k enc.KeyRef) error { seen = append(seen, k.Context); return nil }
	e := enc.New(keys)
	stored, err := e.SealOne(ctx, enc.SealRequest{Spec: tenantSpec, Plaintext: []byte("x"), ItemContext: tenant("acme")})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0]["tenant"] != "acme" || seen[0]["purpose"] != "pii" || len(seen[0]) != 2 {
		t.Fatalf("KMS saw context %v", seen)
	}
	got, err := e.OpenOne(ctx, enc.OpenRequest{Spec: tenantSpec, Stored: stored, ItemContext: tenant("acme")})
	if err != nil || string(got) != "x" {
		t.Fatalf("open: %q, %v", got, err)
	}
	_, err = e.OpenOne(ctx, enc.OpenRequest{Spec: tenantSpec, Stored: stored, ItemContext: tenant("globex")})
	if !errors.Is(err, enc.ErrInvalidCiphertext) {
		t.Fatalf("other tenant: %v, want ErrInvalidCiphertext", err)
	}
}

func TestContextFromNeedsExactlyItsValues(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	e := enc.New(keys)
	cases := map[string]map[string]string{
		"none":      nil,
		"empty":     {"tenant": ""},
		"other key": {"tenant": "acme", "region": "eu"},
		"wrong key": {"tenantx": "acme"},
	}
	for name, ic := range cases {
		_, err := e.SealOne(ctx, enc.SealRequest{Spec: tenantSpec, Attribute: "ssn", Plaintext: []byte("x"), ItemContext: ic})
		if !errors.Is(err, enc.ErrItemContext) || !strings.Contains(err.Error(), "ssn") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := e.Encrypt(ctx, tenantSpec, []byte("x")); !errors.Is(err, enc.ErrItemContext) || !strings.Contains(err.Error(), "tenant_id") {
		t.Errorf("Encrypt with ContextFrom: %v", err)
	}
	// Item context for a spec that takes none is a mistake too.
	if _, err := e.SealOne(ctx, enc.SealRequest{Spec: spec, Plaintext: []byte("x"), ItemContext: tenant("acme")}); !errors.Is(err, enc.ErrItemContext) {
		t.Errorf("item context without ContextFrom: %v", err)
	}
	if n := keys.Generates.Load(); n != 0 {
		t.Fatalf("%d KMS calls for bad requests", n)
	}
}

func TestContextFromValidation(t *testing.T) {
	for name, s := range map[string]enc.Spec{
		"collides with static": {KeyID: "k", Context: map[string]string{"tenant": "x"}, ContextFrom: map[string]string{"tenant": "tenant_id"}},
		"empty context key":    {KeyID: "k", ContextFrom: map[string]string{"": "tenant_id"}},
		"empty attribute":      {KeyID: "k", ContextFrom: map[string]string{"tenant": ""}},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if err := enc.NewRegistry().Register("x", s); err == nil {
			t.Errorf("%s: registered", name)
		}
	}
}

func TestRegistryCopiesContextFrom(t *testing.T) {
	r := enc.NewRegistry()
	from := map[string]string{"tenant": "tenant_id"}
	r.MustRegister("t", enc.Spec{KeyID: "k", ContextFrom: from, Version: enc.Version2})
	from["tenant"] = "changed"
	got, _ := r.Lookup("t")
	if got.ContextFrom["tenant"] != "tenant_id" || got.Version != enc.Version2 {
		t.Fatalf("registered spec changed through the caller's map: %+v", got)
	}
	got.ContextFrom["tenant"] = "again"
	if again, _ := r.Lookup("t"); again.ContextFrom["tenant"] != "tenant_id" {
		t.Fatal("registered spec changed through a looked-up spec")
	}
}

// Values of one tenant share a data key; each tenant gets its own.
func TestOneDataKeyPerTenantPerCall(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	e := enc.New(keys)
	var reqs []enc.SealRequest
	tenants := []string{"acme", "globex", "acme", "initech", "globex", "acme"}
	for _, id := range tenants {
		reqs = append(reqs, enc.SealRequest{Spec: tenantSpec, Plaintext: []byte("v-" + id), ItemContext: tenant(id)})
	}
	stored, err := e.Seal(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if n := keys.Generates.Load(); n != 3 {
		t.Fatalf("%d GenerateDataKey calls for 3 tenants, want 3", n)
	}
	opens := make([]enc.OpenRequest, len(stored))
	for i, s := range stored {
		opens[i] = enc.OpenRequest{Spec: tenantSpec, Stored: s, ItemContext: tenant(tenants[i])}
	}
	plain, err := e.Open(ctx, opens)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range plain {
		if string(p) != "v-"+tenants[i] {
			t.Fatalf("value %d opened to %q", i, p)
		}
	}
	if n := keys.Decrypts.Load(); n != 3 {
		t.Fatalf("%d Decrypt calls for 3 data keys, want 3", n)
	}
}
