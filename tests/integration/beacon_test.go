package integration

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/dynotest"
	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// Customer keeps its email sealed per tenant, with a compound beacon
// (tenant, then the email's beacon) that keys the by-email index.
type Customer struct {
	Tenant string                  `dynamodbav:"tenant" repo:"hash"`
	ID     string                  `dynamodbav:"id" repo:"range"`
	Name   string                  `dynamodbav:"name"`
	Email  field.Encrypted[string] `dynamodbav:"email" enc:"customer-pii" beacon:"email,prefix=tenant" repo:"gsi:by-email:hash"`
}

var tenants = []string{"acme", "globex", "initech"}

// beaconBits is short on purpose: 256 beacons per tenant for ~333
// customers each, so many beacons are shared by different emails and a
// lookup must tell them apart.
const beaconBits = 8

type beaconFixture struct {
	*fixture
	macKey string
	enc    *enc.Encryptor
}

func newBeaconFixture(t *testing.T) *beaconFixture {
	t.Helper()
	f := newFixture(t)
	macKey, _ := f.env.MacKey(t)
	f.reg.MustRegister("customer-pii", enc.Spec{KeyID: f.alias, ContextFrom: map[string]string{"tenant": "tenant"}})
	f.reg.MustRegisterBeacon("email", enc.Beacon{KeyID: macKey, Bits: beaconBits, TrimSpace: true, FoldCase: true})
	return &beaconFixture{fixture: f, macKey: macKey, enc: f.env.Encryptor()}
}

// table creates the customers table; more repositories over it come from
// repoOn.
func (bf *beaconFixture) table(t *testing.T, opts ...repo.Option) *repo.Repo[Customer] {
	t.Helper()
	base := []repo.Option{repo.WithRegistry(bf.reg), repo.WithEncryptor(bf.enc)}
	return dynotest.Table[Customer](t, bf.env, append(base, opts...)...)
}

func (bf *beaconFixture) repoOn(t *testing.T, table string, opts ...repo.Option) *repo.Repo[Customer] {
	t.Helper()
	base := []repo.Option{repo.WithRegistry(bf.reg), repo.WithClient(bf.env.DynamoDB), repo.WithEncryptor(bf.enc)}
	r, err := repo.New[Customer](table, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// customerEmail gives customer i of a tenant its email: the same 333
// emails in every tenant, so a lookup in the wrong tenant would find one.
func customerEmail(i int) string { return fmt.Sprintf("user%03d@example.com", i) }

func newCustomers(n int) []Customer {
	out := make([]Customer, 0, n)
	for i := range n {
		tenant := tenants[i%len(tenants)]
		out = append(out, Customer{Tenant: tenant, ID: fmt.Sprintf("C%04d", i), Name: fmt.Sprintf("customer %d", i),
			Email: field.NewEncrypted(customerEmail(i / len(tenants)))})
	}
	return out
}

func lookup(t *testing.T, r *repo.Repo[Customer], tenant, email string) []string {
	t.Helper()
	var ids []string
	for c, err := range r.Lookup(context.Background(), "email", Customer{Tenant: tenant, Email: field.NewEncrypted(email)}) {
		if err != nil {
			t.Fatalf("lookup %s in %s: %v", email, tenant, err)
		}
		ids = append(ids, c.ID)
	}
	slices.Sort(ids)
	return ids
}

func scanRaw(t *testing.T, env *dynotest.Env, table string) []map[string]types.AttributeValue {
	t.Helper()
	var items []map[string]types.AttributeValue
	p := dynamodb.NewScanPaginator(env.DynamoDB, &dynamodb.ScanInput{TableName: aws.String(table)})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, out.Items...)
	}
	return items
}

var storedBeacon = regexp.MustCompile(`^(acme|globex|initech)#[0-9a-f]{2}$`)

func TestBeaconLookupFindsExactlyTheMatchesOfItsTenant(t *testing.T) {
	bf := newBeaconFixture(t)
	r := bf.table(t)
	ctx := context.Background()
	all := newCustomers(1000)
	if err := r.BatchPut(ctx, all); err != nil {
		t.Fatal(err)
	}

	// Short beacons collide: within a tenant, some beacon is shared by
	// customers of different emails.
	raw := scanRaw(t, bf.env, r.Table())
	if len(raw) != len(all) {
		t.Fatalf("%d items stored, want %d", len(raw), len(all))
	}
	emailsPerBeacon := map[string]int{}
	for _, item := range raw {
		b := storedString(t, item, "email_beacon")
		if !storedBeacon.MatchString(b) {
			t.Fatalf("stored beacon %q: want tenant#two hex digits", b)
		}
		emailsPerBeacon[b]++
		for name, av := range item {
			if sv, ok := av.(*types.AttributeValueMemberS); ok && strings.Contains(sv.Value, "@example.com") {
				t.Fatalf("attribute %s holds plaintext %q", name, sv.Value)
			}
		}
	}
	shared := 0
	for _, n := range emailsPerBeacon {
		if n > 1 {
			shared++
		}
	}
	if shared == 0 {
		t.Fatal("no two emails of a tenant share a beacon; the test needs collisions")
	}
	t.Logf("%d beacons over %d items, %d shared by several emails", len(emailsPerBeacon), len(raw), shared)

	// Every email of every tenant finds exactly its customer, also when
	// written with other case and spaces (the beacon folds case and trims).
	for i := 0; i < 333; i += 7 {
		for ti, tenant := range tenants {
			want := []string{fmt.Sprintf("C%04d", i*len(tenants)+ti)}
			if got := lookup(t, r, tenant, "  "+strings.ToUpper(customerEmail(i))+" "); !slices.Equal(got, want) {
				t.Fatalf("lookup of %s in %s: %v, want %v", customerEmail(i), tenant, got, want)
			}
		}
	}
	// An email only one tenant has is found in no other.
	only := Customer{Tenant: "acme", ID: "ONLY", Email: field.NewEncrypted("only-acme@example.com")}
	if err := r.Put(ctx, only); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, r, "acme", "only-acme@example.com"); !slices.Equal(got, []string{"ONLY"}) {
		t.Fatalf("own tenant: %v", got)
	}
	for _, other := range tenants[1:] {
		if got := lookup(t, r, other, "only-acme@example.com"); len(got) != 0 {
			t.Fatalf("tenant %s finds acme's customer: %v", other, got)
		}
	}
	if got := lookup(t, r, "acme", "nobody@example.com"); len(got) != 0 {
		t.Fatalf("unknown email: %v", got)
	}
}

func TestBeaconFollowsUpdatesAndRemovals(t *testing.T) {
	bf := newBeaconFixture(t)
	r := bf.table(t)
	ctx := context.Background()
	if err := r.BatchPut(ctx, newCustomers(30)); err != nil {
		t.Fatal(err)
	}
	k := repo.Key{Hash: "acme", Range: "C0003"} // user001
	key := map[string]types.AttributeValue{"tenant": s("acme"), "id": s("C0003")}
	before := storedString(t, bf.rawItem(t, r.Table(), key), "email_beacon")

	if _, err := r.Update(ctx, k, repo.NewUpdate().Set("email", "moved@example.com")); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, r, "acme", customerEmail(1)); len(got) != 0 {
		t.Fatalf("old email still finds %v", got)
	}
	if got := lookup(t, r, "acme", "MOVED@example.com"); !slices.Equal(got, []string{"C0003"}) {
		t.Fatalf("new email finds %v", got)
	}
	after := storedString(t, bf.rawItem(t, r.Table(), key), "email_beacon")
	if !strings.HasPrefix(after, "acme#") {
		t.Fatalf("beacon %q after the update (was %q)", after, before)
	}

	if _, err := r.Update(ctx, k, repo.NewUpdate().Remove("email")); err != nil {
		t.Fatal(err)
	}
	if item := bf.rawItem(t, r.Table(), key); item["email_beacon"] != nil || item["email"] != nil {
		t.Fatalf("after removing the email: %v", item)
	}
	if got := lookup(t, r, "acme", "moved@example.com"); len(got) != 0 {
		t.Fatalf("removed email still finds %v", got)
	}

	// A beacon attribute can only be compared for equality.
	bad := r.Query(ctx, expression.Key("tenant").Equal(expression.Value("acme")),
		repo.Filter(expression.Name("email_beacon").BeginsWith("acme#")))
	for _, err := range bad {
		if !errors.Is(err, repo.ErrEncryptedComparison) {
			t.Fatalf("begins_with on a beacon: %v, want ErrEncryptedComparison", err)
		}
		break
	}
	match, err := r.MatchBeacon(ctx, "email", Customer{Tenant: "acme", Email: field.NewEncrypted(customerEmail(2))})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for c, err := range r.Query(ctx, expression.Key("tenant").Equal(expression.Value("acme")), repo.Filter(match)) {
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := c.Email.Value(); v == customerEmail(2) {
			ids = append(ids, c.ID)
		}
	}
	if !slices.Equal(ids, []string{"C0006"}) {
		t.Fatalf("filter by MatchBeacon kept %v with the email, want [C0006]", ids)
	}
}

func TestBeaconKeyCostsOneKMSCallPerProcess(t *testing.T) {
	bf := newBeaconFixture(t)
	bf.enc = cachedEncryptor(bf.fixture, enc.CacheLimits{})
	r := bf.table(t)
	ctx := context.Background()
	// The start-up check asks for the beacon key, which the cache keeps.
	if err := r.CheckKeys(ctx, map[string]string{"tenant": "acme"}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		c := Customer{Tenant: tenants[i%3], ID: fmt.Sprintf("K%02d", i), Email: field.NewEncrypted(customerEmail(i))}
		if err := r.Put(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if got := lookup(t, r, tenants[i%3], customerEmail(i)); !slices.Equal(got, []string{fmt.Sprintf("K%02d", i)}) {
			t.Fatalf("lookup %d: %v", i, got)
		}
	}
	if st := bf.enc.Stats(); st.GenerateMacCalls != 1 {
		t.Fatalf("%d GenerateMac calls for a check, %d writes and %d lookups over 3 tenants, want 1", st.GenerateMacCalls, n, n)
	}

	// A beacon whose key cannot make MACs (a symmetric key) fails the check.
	reg := enc.NewRegistry()
	reg.MustRegister("customer-pii", enc.Spec{KeyID: bf.alias, ContextFrom: map[string]string{"tenant": "tenant"}})
	reg.MustRegisterBeacon("email", enc.Beacon{KeyID: bf.alias, Bits: beaconBits})
	wrong := bf.repoOn(t, r.Table(), repo.WithRegistry(reg))
	if err := wrong.CheckKeys(ctx, map[string]string{"tenant": "acme"}); err == nil || !strings.Contains(err.Error(), `check beacon "email"`) {
		t.Fatalf("check with a symmetric key as beacon key: %v", err)
	}
}

func TestBeaconModes(t *testing.T) {
	bf := newBeaconFixture(t)
	r := bf.table(t)
	ctx := context.Background()
	if err := r.BatchPut(ctx, newCustomers(9)); err != nil {
		t.Fatal(err)
	}
	key := map[string]types.AttributeValue{"tenant": s("globex"), "id": s("C0004")}
	before := storedString(t, bf.rawItem(t, r.Table(), key), "email_beacon")

	// ReadOnly looks up: it needs the beacon key, not GenerateDataKey.
	reader := bf.repoOn(t, r.Table(), repo.WithMode(enc.ReadOnly))
	if got := lookup(t, reader, "globex", customerEmail(1)); !slices.Equal(got, []string{"C0004"}) {
		t.Fatalf("ReadOnly lookup: %v", got)
	}

	// WriteOnly writes beacons of new values, and writes back the beacon
	// of a value it loaded sealed and cannot open.
	writer := bf.repoOn(t, r.Table(), repo.WithMode(enc.WriteOnly))
	c, err := writer.Get(ctx, repo.Key{Hash: "globex", Range: "C0004"})
	if err != nil {
		t.Fatal(err)
	}
	c.Name = "renamed"
	if err := writer.Put(ctx, c); err != nil {
		t.Fatal(err)
	}
	if after := storedString(t, bf.rawItem(t, r.Table(), key), "email_beacon"); after != before {
		t.Fatalf("WriteOnly write-back changed the beacon: %q, was %q", after, before)
	}
	if err := writer.Put(ctx, Customer{Tenant: "globex", ID: "W1", Email: field.NewEncrypted("written@example.com")}); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, r, "globex", "written@example.com"); !slices.Equal(got, []string{"W1"}) {
		t.Fatalf("lookup of a WriteOnly write: %v", got)
	}
	for _, err := range writer.Lookup(ctx, "email", Customer{Tenant: "globex", Email: field.NewEncrypted("x")}) {
		if !errors.Is(err, enc.ErrWriteOnly) {
			t.Fatalf("WriteOnly lookup: %v, want ErrWriteOnly", err)
		}
	}
	// A lookup without the tenant cannot make the beacon.
	for _, err := range r.Lookup(ctx, "email", Customer{Email: field.NewEncrypted(customerEmail(1))}) {
		if err == nil || !strings.Contains(err.Error(), "tenant") {
			t.Fatalf("lookup without a tenant: %v", err)
		}
	}
}

func TestBeaconsInTransactions(t *testing.T) {
	bf := newBeaconFixture(t)
	if bf.env.Backend == "strict" {
		t.Skip("dynalite has no transactions (TransactWriteItems)")
	}
	r := bf.table(t)
	ctx := context.Background()
	if err := r.Put(ctx, Customer{Tenant: "acme", ID: "T2", Email: field.NewEncrypted("before@example.com")}); err != nil {
		t.Fatal(err)
	}
	err := repo.Transact(ctx,
		r.TxPut(Customer{Tenant: "acme", ID: "T1", Email: field.NewEncrypted("tx@example.com")}),
		r.TxUpdate(repo.Key{Hash: "acme", Range: "T2"}, repo.NewUpdate().Set("email", "after@example.com")))
	if err != nil {
		t.Fatal(err)
	}
	for email, want := range map[string][]string{"tx@example.com": {"T1"}, "after@example.com": {"T2"}, "before@example.com": nil} {
		if got := lookup(t, r, "acme", email); !slices.Equal(got, want) {
			t.Fatalf("lookup %s: %v, want %v", email, got, want)
		}
	}
}

func TestMigrateBackfillsBeacons(t *testing.T) {
	bf := newBeaconFixture(t)
	r := bf.table(t)
	ctx := context.Background()
	if err := r.BatchPut(ctx, newCustomers(12)); err != nil {
		t.Fatal(err)
	}
	// Items from before the beacon: one without it, one with a plaintext
	// email (before the field was encrypted), one with a wrong beacon.
	strip := func(id string, update string, values map[string]types.AttributeValue) {
		in := &dynamodb.UpdateItemInput{TableName: aws.String(r.Table()), Key: map[string]types.AttributeValue{"tenant": s("acme"), "id": s(id)},
			UpdateExpression: aws.String(update), ExpressionAttributeValues: values}
		if _, err := bf.env.DynamoDB.UpdateItem(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	strip("C0000", "REMOVE email_beacon", nil)
	strip("C0003", "SET email = :e REMOVE email_beacon", map[string]types.AttributeValue{":e": s("legacy@example.com")})
	strip("C0006", "SET email_beacon = :b", map[string]types.AttributeValue{":b": s("acme#zz")})
	if got := lookup(t, r, "acme", customerEmail(0)); len(got) != 0 {
		t.Fatalf("before the backfill: %v", got)
	}
	st, err := r.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Beacons != 3 || st.Changed != 3 || st.Failed != 0 {
		t.Fatalf("migrate: %+v, want 3 beacons on 3 items", st)
	}
	for email, want := range map[string]string{customerEmail(0): "C0000", "legacy@example.com": "C0003", customerEmail(2): "C0006"} {
		if got := lookup(t, r, "acme", email); !slices.Equal(got, []string{want}) {
			t.Fatalf("lookup %s after the backfill: %v", email, got)
		}
	}
	again, err := r.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again.Changed != 0 || again.Beacons != 0 {
		t.Fatalf("second run: %+v, want no change", again)
	}
}

// Badge has a beacon without a prefix or a context from the item: the
// lookup is a query of the index alone.
type Badge struct {
	ID   string                  `dynamodbav:"id" repo:"hash"`
	Code field.Encrypted[string] `dynamodbav:"code" enc:"badge" beacon:"code" repo:"gsi:by-code:hash"`
}

func TestBeaconWithoutPrefixOrContext(t *testing.T) {
	f := newFixture(t)
	macKey, _ := f.env.MacKey(t)
	f.reg.MustRegister("badge", enc.Spec{KeyID: f.alias})
	f.reg.MustRegisterBeacon("code", enc.Beacon{KeyID: macKey, Bits: 4})
	r := dynotest.Table[Badge](t, f.env, repo.WithRegistry(f.reg))
	ctx := context.Background()
	var badges []Badge
	for i := range 40 {
		badges = append(badges, Badge{ID: fmt.Sprintf("B%02d", i), Code: field.NewEncrypted(fmt.Sprintf("code-%d", i%20))})
	}
	if err := r.BatchPut(ctx, badges); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for b, err := range r.Lookup(ctx, "code", Badge{Code: field.NewEncrypted("code-7")}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, b.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"B07", "B27"}) {
		t.Fatalf("lookup of code-7 among 20 codes on 16 beacons: %v, want [B07 B27]", ids)
	}
	n := 0
	for _, err := range r.Lookup(ctx, "code", Badge{Code: field.NewEncrypted("code-7")}, repo.Limit(1)) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("Limit(1) yielded %d", n)
	}
}
