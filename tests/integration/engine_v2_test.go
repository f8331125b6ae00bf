package integration

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/dynotest"
	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/kmsx"
	"github.com/dynoseal/dynoseal/repo"
)

// Entry has a string hash key and a number range key, so bindings cover
// both key types; org is where per-item encryption context comes from.
type Entry struct {
	Account string                  `dynamodbav:"account" repo:"hash"`
	Seq     int                     `dynamodbav:"seq" repo:"range"`
	Org     string                  `dynamodbav:"org"`
	SSN     field.Encrypted[string] `dynamodbav:"ssn" enc:"entry"`
	Notes   field.Encrypted[string] `dynamodbav:"notes" enc:"entry"`
}

func entryKey(account string, seq int) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"account": s(account), "seq": &types.AttributeValueMemberN{Value: fmt.Sprint(seq)}}
}

// entries registers spec as "entry" and returns a repository for a new table.
func entries(t *testing.T, f *fixture, spec enc.Spec, opts ...repo.Option) *repo.Repo[Entry] {
	t.Helper()
	spec.KeyID = f.alias
	f.reg.MustRegister("entry", spec)
	return dynotest.Table[Entry](t, f.env, append([]repo.Option{repo.WithRegistry(f.reg)}, opts...)...)
}

// sameTable returns another repository on r's table, e.g. with another
// encryptor or mode; the spec comes from f's registry.
func sameTable[T any](t *testing.T, f *fixture, table string, opts ...repo.Option) *repo.Repo[T] {
	t.Helper()
	base := []repo.Option{repo.WithClient(f.env.DynamoDB), repo.WithRegistry(f.reg), repo.WithEncryptor(f.env.Encryptor())}
	r, err := repo.New[T](table, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func cachedEncryptor(f *fixture, limits enc.CacheLimits) *enc.Encryptor {
	return enc.New(kmsx.NewFromConfig(f.env.Config), enc.WithCache(limits))
}

func newEntry(account string, seq int, org string) Entry {
	return Entry{Account: account, Seq: seq, Org: org,
		SSN: field.NewEncrypted("ssn " + account), Notes: field.NewEncrypted(fmt.Sprintf("notes %s/%d", account, seq))}
}

func mustValue(t *testing.T, e field.Encrypted[string]) string {
	t.Helper()
	v, err := e.Value()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestEngineVersion2RoundTrip(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := entries(t, f, enc.Spec{Version: enc.Version2})
	if err := r.Put(ctx, newEntry("ACC#1", 42, "acme")); err != nil {
		t.Fatal(err)
	}
	raw := f.rawItem(t, r.Table(), entryKey("ACC#1", 42))
	for _, attr := range []string{"ssn", "notes"} {
		if v, err := enc.EnvelopeVersion(storedString(t, raw, attr)); err != nil || v != enc.Version2 {
			t.Fatalf("%s stored as version %d, %v", attr, v, err)
		}
	}
	got, err := r.Get(ctx, repo.Key{Hash: "ACC#1", Range: 42})
	if err != nil {
		t.Fatal(err)
	}
	if mustValue(t, got.SSN) != "ssn ACC#1" || mustValue(t, got.Notes) != "notes ACC#1/42" {
		t.Fatal("values did not round-trip")
	}
	// Unchanged values go back as stored, binding intact.
	if err := r.Put(ctx, got); err != nil {
		t.Fatal(err)
	}
	if again := f.rawItem(t, r.Table(), entryKey("ACC#1", 42)); storedString(t, again, "ssn") != storedString(t, raw, "ssn") {
		t.Fatal("unchanged value was re-sealed")
	}
	if _, err := r.Get(ctx, repo.Key{Hash: "ACC#1", Range: 42}); err != nil {
		t.Fatal(err)
	}
}

// A version-2 ciphertext copied with a raw PutItem to another item's same
// attribute, or to another attribute of its own item, does not open.
func TestEngineVersion2CopiedCiphertextFails(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := entries(t, f, enc.Spec{Version: enc.Version2})
	for _, e := range []Entry{newEntry("ACC#1", 1, "acme"), newEntry("ACC#2", 1, "acme"), newEntry("ACC#1", 2, "acme")} {
		if err := r.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	source := f.rawItem(t, r.Table(), entryKey("ACC#1", 1))

	cases := []struct {
		name    string
		account string
		seq     int
		to      string
	}{
		{name: "other hash key", account: "ACC#2", seq: 1, to: "ssn"},
		{name: "other range key", account: "ACC#1", seq: 2, to: "ssn"},
		{name: "other attribute", account: "ACC#1", seq: 1, to: "notes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := f.rawItem(t, r.Table(), entryKey(c.account, c.seq))
			target[c.to] = source["ssn"]
			f.rawPut(t, r.Table(), target)
			_, err := r.Get(ctx, repo.Key{Hash: c.account, Range: c.seq})
			if !errors.Is(err, enc.ErrInvalidCiphertext) {
				t.Fatalf("err = %v, want ErrInvalidCiphertext", err)
			}
			e, ok := enc.AsError(err)
			if !ok || e.Attribute != c.to || e.Op != enc.OpDecrypt {
				t.Fatalf("error %#v does not name attribute %s", e, c.to)
			}
		})
	}
	// A version-1 value is not bound: the same copy opens (this is what
	// version 2 is for).
	f2 := newFixture(t)
	v1 := entries(t, f2, enc.Spec{})
	for _, e := range []Entry{newEntry("ACC#1", 1, "acme"), newEntry("ACC#2", 1, "acme")} {
		if err := v1.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	target := f2.rawItem(t, v1.Table(), entryKey("ACC#2", 1))
	target["ssn"] = f2.rawItem(t, v1.Table(), entryKey("ACC#1", 1))["ssn"]
	f2.rawPut(t, v1.Table(), target)
	got, err := v1.Get(ctx, repo.Key{Hash: "ACC#2", Range: 1})
	if err != nil || mustValue(t, got.SSN) != "ssn ACC#1" {
		t.Fatalf("version-1 copy: %v", err)
	}
}

func TestEngineContextFromItemRoundTrip(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := entries(t, f, enc.Spec{Context: map[string]string{"purpose": "pii"}, ContextFrom: map[string]string{"org": "org"}})
	for i, org := range []string{"acme", "globex"} {
		if err := r.Put(ctx, newEntry("ACC#1", i, org)); err != nil {
			t.Fatal(err)
		}
	}
	for i, org := range []string{"acme", "globex"} {
		got, err := r.Get(ctx, repo.Key{Hash: "ACC#1", Range: i})
		if err != nil {
			t.Fatalf("%s: %v", org, err)
		}
		if got.Org != org || mustValue(t, got.Notes) != fmt.Sprintf("notes ACC#1/%d", i) {
			t.Fatalf("%s: opened %+v", org, got)
		}
	}

	// Changing the context attribute behind the repository's back makes KMS
	// refuse the data key.
	raw := f.rawItem(t, r.Table(), entryKey("ACC#1", 0))
	raw["org"] = s("globex")
	f.rawPut(t, r.Table(), raw)
	_, err := r.Get(ctx, repo.Key{Hash: "ACC#1", Range: 0})
	if !errors.Is(err, enc.ErrInvalidCiphertext) {
		t.Fatalf("changed org: err = %v, want ErrInvalidCiphertext", err)
	}

	// A projection of an encrypted attribute brings along the context
	// attribute it needs (and, were the spec version 2, the key), so the
	// value opens. (Left out by hand, it would be a clear ErrItemContext
	// before any KMS call; see the unit tests of repo.)
	got, err := r.Get(ctx, repo.Key{Hash: "ACC#1", Range: 1}, repo.Project("ssn"))
	if err != nil {
		t.Fatalf("projection of ssn alone: %v", err)
	}
	if mustValue(t, got.SSN) != "ssn ACC#1" || got.Org != "globex" || got.Notes.IsPresent() {
		t.Fatalf("projected %+v", got)
	}
	// Item 0's org was changed above; read item 1 alone.
	one := expression.Key("account").Equal(expression.Value("ACC#1")).And(expression.Key("seq").Equal(expression.Value(1)))
	n := 0
	for e, err := range r.Query(ctx, one, repo.Project("seq", "notes")) {
		n++
		if err != nil {
			t.Fatalf("query with a projection of notes alone: %v", err)
		}
		if mustValue(t, e.Notes) != "notes ACC#1/1" || e.SSN.IsPresent() {
			t.Fatalf("projected %+v", e)
		}
	}
	if n != 1 {
		t.Fatalf("%d items", n)
	}

	// Writing an item without the attribute fails before any KMS call.
	err = r.Put(ctx, newEntry("ACC#1", 9, ""))
	if !errors.Is(err, enc.ErrItemContext) {
		t.Fatalf("put without org: err = %v, want ErrItemContext", err)
	}
}

// Items of one tenant share a data key within a call (and, with a cache,
// across calls); each tenant has its own.
func TestEnginePerTenantDataKeys(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := entries(t, f, enc.Spec{Version: enc.Version2, ContextFrom: map[string]string{"org": "org"}})
	orgs := []string{"acme", "globex", "initech"}

	// One Put: two encrypted fields, one tenant, one GenerateDataKey.
	if err := r.Put(ctx, newEntry("ACC#0", 0, "acme")); err != nil {
		t.Fatal(err)
	}
	if st := r.Encryptor().Stats(); st.GenerateDataKeyCalls != 1 {
		t.Fatalf("one Put of two fields made %d GenerateDataKey calls", st.GenerateDataKeyCalls)
	}
	// Without a cache every call makes its own data key.
	for i := range 6 {
		if err := r.Put(ctx, newEntry("ACC#1", i, orgs[i%3])); err != nil {
			t.Fatal(err)
		}
	}
	if st := r.Encryptor().Stats(); st.GenerateDataKeyCalls != 7 {
		t.Fatalf("7 Puts made %d GenerateDataKey calls, want 7", st.GenerateDataKeyCalls)
	}

	// With a cache shared by the calls, one data key per tenant.
	cached := sameTable[Entry](t, f, r.Table(), repo.WithEncryptor(cachedEncryptor(f, enc.CacheLimits{})))
	for i := range 6 {
		if err := cached.Put(ctx, newEntry("ACC#2", i, orgs[i%3])); err != nil {
			t.Fatal(err)
		}
	}
	if st := cached.Encryptor().Stats(); st.GenerateDataKeyCalls != 3 || st.CacheHits != 3 {
		t.Fatalf("6 Puts for 3 tenants with a cache: %+v, want 3 GenerateDataKey and 3 hits", st)
	}
	// And reading them back decrypts each tenant's key once.
	for i := range 6 {
		got, err := cached.Get(ctx, repo.Key{Hash: "ACC#2", Range: i})
		if err != nil {
			t.Fatal(err)
		}
		if mustValue(t, got.SSN) != "ssn ACC#2" || got.Org != orgs[i%3] {
			t.Fatalf("item %d opened to %+v", i, got)
		}
	}
	if st := cached.Encryptor().Stats(); st.DecryptCalls != 3 {
		t.Fatalf("6 Gets of 3 tenants' data keys made %d Decrypt calls, want 3", st.DecryptCalls)
	}
}

// Cache limits hold across calls: a data key seals at most MaxUses values,
// and a WriteOnly repository sharing the encryptor never opens from the
// decrypt cache.
func TestEngineCacheReuseAcrossCalls(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	e := cachedEncryptor(f, enc.CacheLimits{MaxUses: 3, MaxEntries: 10})
	r := users(t, f, repo.WithEncryptor(e))
	for i := range 7 {
		if err := r.Put(ctx, User{PK: fmt.Sprint("USER#", i), SSN: field.NewEncrypted(fmt.Sprint("ssn ", i))}); err != nil {
			t.Fatal(err)
		}
	}
	// Uses 1-3 on the first key, 4-6 on the second, 7 on a third.
	if st := e.Stats(); st.GenerateDataKeyCalls != 3 || st.CacheHits != 4 || st.CacheMisses != 3 {
		t.Fatalf("7 Puts with MaxUses 3: %+v, want 3 GenerateDataKey, 4 hits, 3 misses", st)
	}
	before := e.Stats()
	for i := range 7 {
		u, err := r.Get(ctx, repo.Key{Hash: fmt.Sprint("USER#", i)})
		if err != nil {
			t.Fatal(err)
		}
		if mustValue(t, u.SSN) != fmt.Sprint("ssn ", i) {
			t.Fatalf("user %d opened wrong", i)
		}
	}
	if st := e.Stats(); st.DecryptCalls-before.DecryptCalls != 3 || st.CacheHits-before.CacheHits != 4 {
		t.Fatalf("7 Gets over 3 data keys: %+v after %+v, want 3 Decrypt and 4 hits", st, before)
	}

	// Same encryptor, WriteOnly: values stay sealed, no Decrypt, no cache use.
	before = e.Stats()
	writer := sameTable[User](t, f, r.Table(), repo.WithEncryptor(e), repo.WithMode(enc.WriteOnly))
	u, err := writer.Get(ctx, repo.Key{Hash: "USER#0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.SSN.Value(); !errors.Is(err, enc.ErrWriteOnly) {
		t.Fatalf("WriteOnly Value() = %v", err)
	}
	if after := e.Stats(); after.DecryptCalls != before.DecryptCalls || after.CacheHits != before.CacheHits {
		t.Fatalf("WriteOnly read used KMS or the decrypt cache: %+v after %+v", after, before)
	}
	// ReadOnly with the same encryptor may not seal, even with a warm cache.
	reader := sameTable[User](t, f, r.Table(), repo.WithEncryptor(e), repo.WithMode(enc.ReadOnly))
	if err := reader.Put(ctx, User{PK: "USER#new", SSN: field.NewEncrypted("x")}); !errors.Is(err, enc.ErrReadOnly) {
		t.Fatalf("ReadOnly Put: %v", err)
	}
	if after := e.Stats(); after.GenerateDataKeyCalls != before.GenerateDataKeyCalls || after.CacheHits != before.CacheHits {
		t.Fatalf("ReadOnly Put used KMS or the encrypt cache: %+v after %+v", after, before)
	}
}

// Update seals a new value with the same binding and context as Put, so Get
// opens it; with ContextFrom the update must carry the context attribute,
// and with it every value sealed under that context
// (update_context_test.go has the details).
func TestEngineUpdateSealsBoundValues(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := entries(t, f, enc.Spec{Version: enc.Version2, ContextFrom: map[string]string{"org": "org"}})
	if err := r.Put(ctx, newEntry("ACC#1", 1, "acme")); err != nil {
		t.Fatal(err)
	}
	key := repo.Key{Hash: "ACC#1", Range: 1}
	_, err := r.Update(ctx, key, repo.NewUpdate().Set("ssn", "new ssn"))
	if !errors.Is(err, enc.ErrItemContext) {
		t.Fatalf("update without org: err = %v, want ErrItemContext", err)
	}
	if _, err := r.Update(ctx, key, repo.NewUpdate().Set("ssn", "new ssn").Set("org", "acme").Set("notes", "new notes")); err != nil {
		t.Fatal(err)
	}
	got, err := r.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if mustValue(t, got.SSN) != "new ssn" || mustValue(t, got.Notes) != "new notes" {
		t.Fatalf("after update: %+v", got)
	}
	if v, _ := enc.EnvelopeVersion(got.SSN.Ciphertext()); v != enc.Version2 {
		t.Fatalf("updated value is version %d", v)
	}
}

// Loaded values follow their item: moved to another tenant or copied to
// another item, they are sealed again on save and open there; unchanged ones
// go back as stored with no KMS call.
func TestEngineBoundValuesFollowTheirItem(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := entries(t, f, enc.Spec{Version: enc.Version2, ContextFrom: map[string]string{"org": "org"}})
	for _, acc := range []string{"ACC#a", "ACC#b"} {
		if err := r.Put(ctx, newEntry(acc, 1, "acme")); err != nil {
			t.Fatal(err)
		}
	}
	a, err := r.Get(ctx, repo.Key{Hash: "ACC#a", Range: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Get(ctx, repo.Key{Hash: "ACC#b", Range: 1})
	if err != nil {
		t.Fatal(err)
	}

	before := r.Encryptor().Stats().GenerateDataKeyCalls
	if err := r.Put(ctx, a); err != nil {
		t.Fatal(err)
	}
	if n := r.Encryptor().Stats().GenerateDataKeyCalls - before; n != 0 {
		t.Fatalf("an unchanged item cost %d GenerateDataKey calls", n)
	}

	a.Org = "globex" // the tenant changes: both values need the new context
	b.SSN = a.SSN    // and b takes a's SSN, bound to a's key
	for _, e := range []Entry{a, b} {
		if err := r.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	a2, err := r.Get(ctx, repo.Key{Hash: "ACC#a", Range: 1})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := r.Get(ctx, repo.Key{Hash: "ACC#b", Range: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustValue(t, a2.Notes); got != "notes ACC#a/1" {
		t.Fatalf("a's notes after the tenant move: %q", got)
	}
	if got := mustValue(t, b2.SSN); got != "ssn ACC#a" {
		t.Fatalf("b's copied SSN: %q", got)
	}
}
