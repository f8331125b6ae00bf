package repo_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/internal/fakedynamo"
	"github.com/dynoseal/dynoseal/internal/teltest"
	"github.com/dynoseal/dynoseal/kmsx"
	"github.com/dynoseal/dynoseal/repo"
)

// Contact has a compound beacon on its email: its kind, then the beacon.
type Contact struct {
	Tenant string                  `dynamodbav:"tenant" repo:"hash"`
	ID     string                  `dynamodbav:"id" repo:"range"`
	Kind   string                  `dynamodbav:"kind"`
	Note   string                  `dynamodbav:"note"`
	Email  field.Encrypted[string] `dynamodbav:"email" enc:"tenant-pii" beacon:"email,prefix=kind" repo:"gsi:by-email:hash"`
}

func beaconRegistry() *enc.Registry {
	reg := enc.NewRegistry()
	reg.MustRegister("tenant-pii", enc.Spec{KeyID: "alias/pii", ContextFrom: map[string]string{"tenant": "tenant"}})
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	reg.MustRegisterBeacon("email", enc.Beacon{KeyID: "alias/beacons", Bits: 12, TrimSpace: true, FoldCase: true})
	return reg
}

// updateRecorder keeps the UpdateItem requests it is sent.
type updateRecorder struct {
	repo.API
	updates []*dynamodb.UpdateItemInput
}

func (u *updateRecorder) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	u.updates = append(u.updates, in)
	return &dynamodb.UpdateItemOutput{}, nil
}

func newContacts(t *testing.T, keys *enctest.Provider, db repo.API, opts ...repo.Option) *repo.Repo[Contact] {
	t.Helper()
	base := []repo.Option{repo.WithRegistry(beaconRegistry()), repo.WithEncryptor(enc.New(keys)), repo.WithClient(db)}
	r, err := repo.New[Contact]("contacts", append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestBeaconIsStoredBesideTheSealedValue(t *testing.T) {
	ctx := context.Background()
	r := newContacts(t, enctest.New(), nil)
	c := Contact{Tenant: "acme", ID: "1", Kind: "work", Email: field.NewEncrypted(" Ann@Example.com")}
	m, err := r.Marshal(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := m["email_beacon"].(*types.AttributeValueMemberS)
	if !ok || !regexp.MustCompile(`^work#[0-9a-f]{3}$`).MatchString(b.Value) {
		t.Fatalf("email_beacon = %#v, want work#<3 hex digits>", m["email_beacon"])
	}
	// Normalisation: the same address in other case and spacing has the
	// same beacon; another tenant has another key, hence another beacon
	// (at 12 bits, equal by chance once in 4096).
	same, _ := r.Marshal(ctx, Contact{Tenant: "acme", ID: "2", Kind: "work", Email: field.NewEncrypted("ann@example.COM ")})
	if got := same["email_beacon"].(*types.AttributeValueMemberS).Value; got != b.Value {
		t.Errorf("normalised beacon %q, want %q", got, b.Value)
	}
	other, _ := r.Marshal(ctx, Contact{Tenant: "globex", ID: "1", Kind: "work", Email: field.NewEncrypted("ann@example.com")})
	if got := other["email_beacon"].(*types.AttributeValueMemberS).Value; got == b.Value {
		t.Errorf("tenants acme and globex share beacon %q", got)
	}
	// No value, no beacon.
	none, err := r.Marshal(ctx, Contact{Tenant: "acme", ID: "3", Kind: "work"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := none["email_beacon"]; ok {
		t.Errorf("an item without email has a beacon: %v", none)
	}
	// A compound beacon needs its prefix.
	if _, err := r.Marshal(ctx, Contact{Tenant: "acme", ID: "4", Email: field.NewEncrypted("x@example.com")}); err == nil || !strings.Contains(err.Error(), "kind") {
		t.Errorf("no kind: %v, want an error naming kind", err)
	}
}

func TestBeaconKeyIsAskedOncePerCall(t *testing.T) {
	keys := enctest.New()
	r := newContacts(t, keys, nil)
	items := make([]Contact, 50)
	for i := range items {
		items[i] = Contact{Tenant: []string{"a", "b", "c"}[i%3], ID: string(rune('A' + i)), Kind: "k", Email: field.NewEncrypted("e")}
	}
	e := r.Encryptor()
	for i := range items {
		if _, err := r.Marshal(context.Background(), items[i]); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.Stats().GenerateMacCalls; got != int64(len(items)) {
		t.Fatalf("%d GenerateMac calls for %d single writes without a cache, want one each", got, len(items))
	}
}

type wrongBeaconType struct {
	PK  string                 `dynamodbav:"pk" repo:"hash"`
	Age field.Encrypted[int64] `dynamodbav:"age" enc:"pii" beacon:"email"`
}

type beaconOnPointer struct {
	PK    string                   `dynamodbav:"pk" repo:"hash"`
	Email *field.Encrypted[string] `dynamodbav:"email" enc:"pii" beacon:"email"`
}

type unknownBeacon struct {
	PK    string                  `dynamodbav:"pk" repo:"hash"`
	Email field.Encrypted[string] `dynamodbav:"email" enc:"pii" beacon:"phone"`
}

type unknownBeaconOption struct {
	PK    string                  `dynamodbav:"pk" repo:"hash"`
	Email field.Encrypted[string] `dynamodbav:"email" enc:"pii" beacon:"email,bits=8"`
}

type encryptedPrefix struct {
	PK    string                  `dynamodbav:"pk" repo:"hash"`
	Org   field.Encrypted[string] `dynamodbav:"org" enc:"pii"`
	Email field.Encrypted[string] `dynamodbav:"email" enc:"pii" beacon:"email,prefix=org"`
}

type beaconNameTaken struct {
	PK     string                  `dynamodbav:"pk" repo:"hash"`
	Email  field.Encrypted[string] `dynamodbav:"email" enc:"pii" beacon:"email"`
	Beacon string                  `dynamodbav:"email_beacon"`
}

type nestedBeacon struct {
	PK      string `dynamodbav:"pk" repo:"hash"`
	Profile struct {
		Email field.Encrypted[string] `dynamodbav:"email" enc:"pii" beacon:"email"`
	} `dynamodbav:"profile"`
}

type beaconRangeKey struct {
	PK    string                  `dynamodbav:"pk" repo:"hash"`
	Org   string                  `dynamodbav:"org" repo:"gsi:by-org:hash"`
	Email field.Encrypted[string] `dynamodbav:"email" enc:"pii" beacon:"email" repo:"gsi:by-org:range"`
}

type indexWithoutBeacon struct {
	PK    string                  `dynamodbav:"pk" repo:"hash"`
	Email field.Encrypted[string] `dynamodbav:"email" enc:"pii" repo:"gsi:by-email:hash"`
}

func TestNewRefusesBeaconsThatCannotWork(t *testing.T) {
	reg := beaconRegistry()
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"not a string", newBeaconErr[wrongBeaconType](reg), "field.Encrypted[string]"},
		{"pointer", newBeaconErr[beaconOnPointer](reg), "field.Encrypted[string]"},
		{"unregistered", newBeaconErr[unknownBeacon](reg), `beacon "phone" is not registered`},
		{"unknown option", newBeaconErr[unknownBeaconOption](reg), `unknown option "bits=8"`},
		{"encrypted prefix", newBeaconErr[encryptedPrefix](reg), "is encrypted"},
		{"name taken", newBeaconErr[beaconNameTaken](reg), `"email_beacon", which`},
		{"nested", newBeaconErr[nestedBeacon](reg), "nested document"},
		{"range key", newBeaconErr[beaconRangeKey](reg), "hash key of a global secondary index only"},
		{"index without beacon", newBeaconErr[indexWithoutBeacon](reg), "declare a beacon"},
		{"projection without the value", newBeaconErr[Contact](reg, repo.WithIndexProjection("by-email", "note")), `project "email"`},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, c.err, c.want)
		}
	}
	if !errors.Is(newBeaconErr[unknownBeacon](reg), enc.ErrNoSpec) {
		t.Error("an unregistered beacon does not match enc.ErrNoSpec")
	}
	if err := newBeaconErr[Contact](reg, repo.WithIndexProjection("by-email", "email")); err != nil {
		t.Errorf("projecting the value: %v", err)
	}
}

func newBeaconErr[T any](reg *enc.Registry, opts ...repo.Option) error {
	_, err := repo.New[T]("t", append([]repo.Option{repo.WithRegistry(reg)}, opts...)...)
	return err
}

func TestCreateTableIndexesTheBeacon(t *testing.T) {
	rec := &tableRecorder{}
	r := newContacts(t, enctest.New(), rec)
	if err := r.CreateTable(context.Background()); err != nil {
		t.Fatal(err)
	}
	in := rec.created
	if len(in.GlobalSecondaryIndexes) != 1 || aws.ToString(in.GlobalSecondaryIndexes[0].KeySchema[0].AttributeName) != "email_beacon" {
		t.Fatalf("indexes: %+v", in.GlobalSecondaryIndexes)
	}
	for _, d := range in.AttributeDefinitions {
		if aws.ToString(d.AttributeName) == "email_beacon" && d.AttributeType != types.ScalarAttributeTypeS {
			t.Fatalf("email_beacon defined as %s", d.AttributeType)
		}
	}
}

type tableRecorder struct {
	repo.API
	created *dynamodb.CreateTableInput
}

func (r *tableRecorder) CreateTable(_ context.Context, in *dynamodb.CreateTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	r.created = in
	return &dynamodb.CreateTableOutput{}, nil
}

func (r *tableRecorder) DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{TableStatus: types.TableStatusActive,
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndexDescription{{IndexName: aws.String("by-email"), IndexStatus: types.IndexStatusActive}}}}, nil
}

func TestUpdateKeepsTheBeaconInStep(t *testing.T) {
	ctx := context.Background()
	db := &updateRecorder{}
	r := newContacts(t, enctest.New(), db)
	k := repo.Key{Hash: "acme", Range: "1"}
	if _, err := r.Update(ctx, k, repo.NewUpdate().Set("email", "new@example.com").Set("kind", "home")); err != nil {
		t.Fatal(err)
	}
	in := db.updates[0]
	expr := aws.ToString(in.UpdateExpression)
	var beacon string
	for ph, name := range in.ExpressionAttributeNames {
		if name == "email_beacon" && strings.Contains(expr, ph+" = ") {
			beacon = strings.Fields(expr[strings.Index(expr, ph+" = ")+len(ph)+3:])[0]
		}
	}
	v, _ := in.ExpressionAttributeValues[strings.TrimRight(beacon, ",")].(*types.AttributeValueMemberS)
	if v == nil || !strings.HasPrefix(v.Value, "home#") {
		t.Fatalf("update %q %v sets no beacon of kind home", expr, in.ExpressionAttributeValues)
	}
	if _, err := r.Update(ctx, k, repo.NewUpdate().Remove("email")); err != nil {
		t.Fatal(err)
	}
	if expr := aws.ToString(db.updates[1].UpdateExpression); !strings.Contains(expr, "REMOVE") || len(db.updates[1].ExpressionAttributeNames) != 2 {
		t.Fatalf("Remove email: %q %v, want both email and email_beacon removed", expr, db.updates[1].ExpressionAttributeNames)
	}
	for _, u := range []repo.Update{
		repo.NewUpdate().Set("email", "x@example.com"), // the prefix is not known
		repo.NewUpdate().Set("kind", "other"),          // the beacon would keep the old prefix
	} {
		if _, err := r.Update(ctx, k, u); !errors.Is(err, repo.ErrInvalidUpdate) || !strings.Contains(err.Error(), "kind") {
			t.Errorf("update %v: %v, want ErrInvalidUpdate naming kind", u, err)
		}
	}
	if _, err := r.Update(ctx, k, repo.NewUpdate().Set("email_beacon", "work#abc")); !errors.Is(err, repo.ErrInvalidUpdate) {
		t.Errorf("setting the beacon by hand: %v, want ErrInvalidUpdate", err)
	}
	if len(db.updates) != 2 {
		t.Errorf("%d requests sent, want 2", len(db.updates))
	}
}

func TestBeaconsCompareForEqualityOnly(t *testing.T) {
	ctx := context.Background()
	db := &fakeDB{}
	r := newContacts(t, enctest.New(), db)
	key := expression.Key("tenant").Equal(expression.Value("acme"))
	for name, cond := range map[string]expression.ConditionBuilder{
		"begins_with": expression.Name("email_beacon").BeginsWith("work#"),
		"less than":   expression.Name("email_beacon").LessThan(expression.Value("work#8")),
		"at least":    expression.Value("work#8").LessThanEqual(expression.Name("email_beacon")),
		"not equal":   expression.Name("email_beacon").NotEqual(expression.Value("work#8")),
		"size":        expression.Name("email_beacon").Size().Equal(expression.Value(8)),
	} {
		for _, err := range r.Query(ctx, key, repo.Filter(cond)) {
			if !errors.Is(err, repo.ErrEncryptedComparison) {
				t.Errorf("%s: %v, want ErrEncryptedComparison", name, err)
			}
			break
		}
	}
	match, err := r.MatchBeacon(ctx, "email", Contact{Tenant: "acme", Kind: "work", Email: field.NewEncrypted("a@example.com")})
	if err != nil {
		t.Fatal(err)
	}
	for _, cond := range []expression.ConditionBuilder{match, expression.Name("email_beacon").AttributeExists()} {
		for _, err := range r.Query(ctx, key, repo.Filter(cond)) {
			t.Errorf("equality or existence on a beacon: %v", err)
		}
	}
	if len(db.queries) != 2 {
		t.Errorf("%d queries sent, want 2", len(db.queries))
	}
}

func TestLookupRefusesWhatItCannotDo(t *testing.T) {
	ctx := context.Background()
	r := newContacts(t, enctest.New(), &fakeDB{})
	probe := Contact{Tenant: "acme", Kind: "work", Email: field.NewEncrypted("a@example.com")}
	for name, c := range map[string]struct {
		attr  string
		probe Contact
		opts  []repo.ReadOption
		want  string
	}{
		"no beacon":    {"note", probe, nil, "no beacon"},
		"an index":     {"email", probe, []repo.ReadOption{repo.Index("x")}, "does not take an index"},
		"no value":     {"email", Contact{Tenant: "acme", Kind: "work"}, nil, "holds no value"},
		"no tenant":    {"email", Contact{Kind: "work", Email: field.NewEncrypted("a")}, nil, "tenant"},
		"no prefix":    {"email", Contact{Tenant: "acme", Email: field.NewEncrypted("a")}, nil, "kind"},
		"a projection": {"email", probe, []repo.ReadOption{repo.Project("note")}, "does not take a projection"},
	} {
		for _, err := range r.Lookup(ctx, c.attr, c.probe, c.opts...) {
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want an error containing %q", name, err, c.want)
			}
		}
	}
	type noIndex struct {
		PK    string                  `dynamodbav:"pk" repo:"hash"`
		Email field.Encrypted[string] `dynamodbav:"email" enc:"pii" beacon:"email"`
	}
	ni, err := repo.New[noIndex]("t", repo.WithRegistry(beaconRegistry()), repo.WithEncryptor(enc.New(enctest.New())), repo.WithClient(&fakeDB{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range ni.Lookup(ctx, "email", noIndex{Email: field.NewEncrypted("a")}) {
		if err == nil || !strings.Contains(err.Error(), "gsi:NAME:hash") {
			t.Errorf("no index: %v", err)
		}
	}
}

func TestCheckKeysChecksBeaconKeys(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	r := newContacts(t, keys, nil)
	if err := r.CheckKeys(ctx, map[string]string{"tenant": "acme"}); err != nil {
		t.Fatal(err)
	}
	if got := keys.Macs.Load(); got != 1 {
		t.Fatalf("%d GenerateMac calls, want 1", got)
	}
	keys.Fail = func(op string, _ enc.KeyRef) error {
		if op == "GenerateMac" {
			return enc.ErrKeyDisabled
		}
		return nil
	}
	err := r.CheckKeys(ctx, map[string]string{"tenant": "acme"})
	if !errors.Is(err, enc.ErrKeyDisabled) || !strings.Contains(err.Error(), `check beacon "email" of email`) {
		t.Fatalf("disabled beacon key: %v", err)
	}
}

// A read of an item type without beacons after one with beacons, both
// leaving values sealed (WriteOnly), shares the pooled read state: the
// second must not read the first's beacons.
func TestReadsWithAndWithoutBeaconsShareNoState(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	rw := newContacts(t, keys, nil)
	m, err := rw.Marshal(ctx, Contact{Tenant: "acme", ID: "1", Kind: "work", Email: field.NewEncrypted("a@example.com")})
	if err != nil {
		t.Fatal(err)
	}
	wo := newContacts(t, keys, nil, repo.WithMode(enc.WriteOnly))
	plain, err := repo.New[trapUser]("users", repo.WithRegistry(beaconRegistry()), repo.WithEncryptor(enc.New(keys)), repo.WithMode(enc.WriteOnly))
	if err != nil {
		t.Fatal(err)
	}
	um, err := plain.Marshal(ctx, trapUser{PK: "u", SSN: field.NewEncrypted("123")})
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		c, err := wo.Unmarshal(ctx, m)
		if err != nil || !c.Email.IsSealed() {
			t.Fatalf("WriteOnly contact: %v", err)
		}
		if _, err := plain.Unmarshal(ctx, um); err != nil {
			t.Fatalf("WriteOnly user after a contact: %v", err)
		}
	}
}

func TestLookupIsTracedWithItsKMSCalls(t *testing.T) {
	ctx := context.Background()
	rec := teltest.New()
	keys := enctest.New()
	e := enc.New(keys, enc.WithObserver(kmsx.Telemetry(rec, rec, nil)))
	f := fakedynamo.New()
	r, err := repo.New[Contact]("contacts", repo.WithRegistry(beaconRegistry()), repo.WithEncryptor(e), repo.WithClient(f.Client()),
		repo.WithTracerProvider(rec), repo.WithMeterProvider(rec))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Put(ctx, Contact{Tenant: "acme", ID: "1", Kind: "work", Email: field.NewEncrypted("ann@example.com")}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range r.Lookup(ctx, "email", Contact{Tenant: "acme", Kind: "work", Email: field.NewEncrypted("ann@example.com")}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("%d matches", n)
	}
	lookup := only(t, rec, "dynoseal.repo.Lookup")
	// One GenerateMac for the probe's beacon and one Decrypt for the match.
	wantProps(t, lookup, map[string]any{"dynoseal.table": "contacts", "dynoseal.item_count": 1, "dynoseal.kms.calls": int64(2)})
	macs := rec.Named("dynoseal.kms.GenerateMac")
	if len(macs) != 2 || macs[1].Parent == nil {
		t.Fatalf("%d GenerateMac spans (one of the Put, one of the Lookup)", len(macs))
	}
	for _, p := range rec.Problems("ann@example.com") {
		t.Error(p)
	}
}
