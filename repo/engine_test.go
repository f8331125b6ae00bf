package repo_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

type Record struct {
	PK       string                             `dynamodbav:"pk" repo:"hash"`
	SK       int                                `dynamodbav:"sk" repo:"range"`
	TenantID string                             `dynamodbav:"tenant_id"`
	SSN      field.Encrypted[string]            `dynamodbav:"ssn" enc:"bound"`
	Note     field.Encrypted[string]            `dynamodbav:"note" enc:"bound"`
	Cards    []Card                             `dynamodbav:"cards"`
	Phones   map[string]field.Encrypted[string] `dynamodbav:"phones" enc:"bound"`
}

type Card struct {
	Number field.Encrypted[string] `dynamodbav:"number" enc:"bound"`
}

var boundSpec = enc.Spec{KeyID: "alias/pii", Version: enc.Version2, ContextFrom: map[string]string{"tenant": "tenant_id"}}

func newRecords(t *testing.T, s enc.Spec, keys *enctest.Provider, opts ...repo.Option) *repo.Repo[Record] {
	t.Helper()
	reg := enc.NewRegistry()
	reg.MustRegister("bound", s)
	r, err := repo.New[Record]("records", append([]repo.Option{repo.WithRegistry(reg), repo.WithEncryptor(enc.New(keys))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newRecord(pk string, sk int, tenant string) Record {
	return Record{
		PK: pk, SK: sk, TenantID: tenant,
		SSN:    field.NewEncrypted("ssn of " + pk),
		Note:   field.NewEncrypted("note of " + pk),
		Cards:  []Card{{Number: field.NewEncrypted("card 1")}, {Number: field.NewEncrypted("card 2")}},
		Phones: map[string]field.Encrypted[string]{"home": field.NewEncrypted("555-0100"), "work": field.NewEncrypted("555-0199")},
	}
}

func marshal(t *testing.T, r *repo.Repo[Record], item Record) map[string]types.AttributeValue {
	t.Helper()
	m, err := r.Marshal(context.Background(), item)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func value[T any](t *testing.T, e field.Encrypted[T]) T {
	t.Helper()
	v, err := e.Value()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVersion2RoundTripThroughRepo(t *testing.T) {
	r := newRecords(t, boundSpec, enctest.New())
	m := marshal(t, r, newRecord("A", 7, "acme"))
	for _, attr := range []string{"ssn", "note"} {
		if v, err := enc.EnvelopeVersion(m[attr].(*types.AttributeValueMemberS).Value); err != nil || v != enc.Version2 {
			t.Fatalf("%s stored as version %d, %v", attr, v, err)
		}
	}
	got, err := r.Unmarshal(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if value(t, got.SSN) != "ssn of A" || value(t, got.Note) != "note of A" || value(t, got.Cards[1].Number) != "card 2" || value(t, got.Phones["work"]) != "555-0199" {
		t.Fatal("values did not round-trip")
	}
}

// A version-2 value copied to another item, another attribute, or another
// map key does not open; moving within a list does.
func TestVersion2ValuesAreBoundToTheirPlace(t *testing.T) {
	ctx := context.Background()
	r := newRecords(t, boundSpec, enctest.New())
	a := marshal(t, r, newRecord("A", 7, "acme"))
	b := marshal(t, r, newRecord("B", 7, "acme"))
	list := func(m map[string]types.AttributeValue) []types.AttributeValue {
		return m["cards"].(*types.AttributeValueMemberL).Value
	}
	phones := func(m map[string]types.AttributeValue) map[string]types.AttributeValue {
		return m["phones"].(*types.AttributeValueMemberM).Value
	}
	moves := map[string]func(m map[string]types.AttributeValue){
		"to another item":      func(m map[string]types.AttributeValue) { m["ssn"] = a["ssn"] },
		"to another attribute": func(m map[string]types.AttributeValue) { m["ssn"] = m["note"] },
		"to another range key": func(m map[string]types.AttributeValue) { m["sk"] = &types.AttributeValueMemberN{Value: "8"} },
		"to another map key":   func(m map[string]types.AttributeValue) { p := phones(m); p["home"], p["work"] = p["work"], p["home"] },
		"list element elsewhere": func(m map[string]types.AttributeValue) {
			m["ssn"] = list(m)[0].(*types.AttributeValueMemberM).Value["number"]
		},
	}
	for name, move := range moves {
		m := clone(b)
		move(m)
		_, err := r.Unmarshal(ctx, m)
		if !errors.Is(err, enc.ErrInvalidCiphertext) {
			t.Errorf("%s: err = %v, want ErrInvalidCiphertext", name, err)
		}
	}
	m := clone(b)
	slices.Reverse(list(m))
	got, err := r.Unmarshal(ctx, m)
	if err != nil {
		t.Fatalf("reordered list: %v", err)
	}
	if value(t, got.Cards[0].Number) != "card 2" {
		t.Fatal("reordered list opened out of order")
	}
}

func clone(m map[string]types.AttributeValue) map[string]types.AttributeValue {
	out := make(map[string]types.AttributeValue, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case *types.AttributeValueMemberL:
			out[k] = &types.AttributeValueMemberL{Value: slices.Clone(x.Value)}
		case *types.AttributeValueMemberM:
			out[k] = &types.AttributeValueMemberM{Value: clone(x.Value)}
		default:
			out[k] = v
		}
	}
	return out
}

func TestContextFromItem(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	var contexts []map[string]string
	keys.Fail = func(_ string, k enc.KeyRef) error { contexts = append(contexts, k.Context); return nil }
	r := newRecords(t, boundSpec, keys)
	m := marshal(t, r, newRecord("A", 1, "acme"))
	if len(contexts) != 1 || contexts[0]["tenant"] != "acme" {
		t.Fatalf("KMS saw contexts %v", contexts)
	}
	if _, err := r.Unmarshal(ctx, m); err != nil {
		t.Fatal(err)
	}
	if contexts[1]["tenant"] != "acme" {
		t.Fatalf("KMS saw contexts %v on read", contexts)
	}

	changed := clone(m)
	changed["tenant_id"] = &types.AttributeValueMemberS{Value: "globex"}
	if _, err := r.Unmarshal(ctx, changed); !errors.Is(err, enc.ErrInvalidCiphertext) {
		t.Fatalf("changed tenant: %v, want ErrInvalidCiphertext", err)
	}

	// Left out by a projection: a clear error instead of a KMS mismatch.
	projected := clone(m)
	delete(projected, "tenant_id")
	_, err := r.Unmarshal(ctx, projected)
	if !errors.Is(err, enc.ErrItemContext) || !strings.Contains(err.Error(), "tenant_id") || !strings.Contains(err.Error(), "projection") {
		t.Fatalf("tenant left out: %v", err)
	}
	noKey := clone(m)
	delete(noKey, "sk")
	if _, err := r.Unmarshal(ctx, noKey); !errors.Is(err, enc.ErrBinding) || !strings.Contains(err.Error(), "sk") {
		t.Fatalf("range key left out: %v", err)
	}
}

func TestContextAttributeMissingOnWrite(t *testing.T) {
	keys := enctest.New()
	r := newRecords(t, boundSpec, keys)
	_, err := r.Marshal(context.Background(), newRecord("A", 1, ""))
	if !errors.Is(err, enc.ErrItemContext) || !strings.Contains(err.Error(), "tenant_id") {
		t.Fatalf("err = %v", err)
	}
	if keys.Generates.Load() != 0 {
		t.Fatal("KMS was called for an item without its context attribute")
	}
}

func TestContextFromIsCheckedByNew(t *testing.T) {
	type WithList struct {
		PK   string                  `dynamodbav:"pk" repo:"hash"`
		Tags []string                `dynamodbav:"tags"`
		Sec  field.Encrypted[string] `dynamodbav:"sec" enc:"s"`
	}
	for name, c := range map[string]struct {
		from string
		want string
	}{
		"unknown attribute":   {"tenant", `"tenant", which`},
		"encrypted attribute": {"sec", "encrypted"},
	} {
		reg := enc.NewRegistry()
		reg.MustRegister("s", enc.Spec{KeyID: "k", ContextFrom: map[string]string{"t": c.from}})
		_, err := repo.New[WithList]("t", repo.WithRegistry(reg))
		if !errors.Is(err, enc.ErrItemContext) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A list is no context value; that shows when an item is written.
	reg := enc.NewRegistry()
	reg.MustRegister("s", enc.Spec{KeyID: "k", ContextFrom: map[string]string{"t": "tags"}})
	r, err := repo.New[WithList]("t", repo.WithRegistry(reg), repo.WithEncryptor(enc.New(enctest.New())))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Marshal(context.Background(), WithList{PK: "a", Tags: []string{"x"}, Sec: field.NewEncrypted("s")})
	if !errors.Is(err, enc.ErrItemContext) || !strings.Contains(err.Error(), "tags") || !strings.Contains(err.Error(), "is L") {
		t.Fatalf("list context: %v", err)
	}
}

// A spec moved to version 2 still opens its version-1 values, and rewrites
// only changed ones as version 2.
func TestMigrationToVersion2(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	v1 := boundSpec
	v1.Version = 0
	old := marshal(t, newRecords(t, v1, keys), newRecord("A", 1, "acme"))
	r := newRecords(t, boundSpec, keys)
	got, err := r.Unmarshal(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	got.Note.Set("changed")
	again := marshal(t, r, got)
	ver := func(attr string) byte {
		v, _ := enc.EnvelopeVersion(again[attr].(*types.AttributeValueMemberS).Value)
		return v
	}
	if ver("ssn") != enc.Version1 || ver("note") != enc.Version2 {
		t.Fatalf("after a change: ssn v%d, note v%d; want v1 kept, v2 for the changed value", ver("ssn"), ver("note"))
	}
	if _, err := r.Unmarshal(ctx, again); err != nil {
		t.Fatal(err)
	}
}

// WriteOnly reads leave values sealed and need neither key nor context.
func TestWriteOnlyReadNeedsNoContext(t *testing.T) {
	keys := enctest.New()
	m := marshal(t, newRecords(t, boundSpec, keys), newRecord("A", 1, "acme"))
	delete(m, "tenant_id")
	got, err := newRecords(t, boundSpec, keys, repo.WithMode(enc.WriteOnly)).Unmarshal(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := got.SSN.Value(); !errors.Is(err, enc.ErrWriteOnly) {
		t.Fatalf("Value() = %v", err)
	}
	if keys.Decrypts.Load() != 0 {
		t.Fatal("WriteOnly read called Decrypt")
	}
}
