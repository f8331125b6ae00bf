package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/dynotest"
	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

type Session struct {
	PK      string                  `dynamodbav:"pk" repo:"hash"`
	User    string                  `dynamodbav:"user"`
	Token   field.Encrypted[string] `dynamodbav:"token" enc:"pii"`
	Expires time.Time               `dynamodbav:"expires" repo:"ttl"`
}

func sessions(t *testing.T, f *fixture) *repo.Repo[Session] {
	t.Helper()
	if _, ok := f.reg.Lookup("pii"); !ok {
		f.reg.MustRegister("pii", enc.Spec{KeyID: f.alias})
	}
	return dynotest.Table[Session](t, f.env, repo.WithRegistry(f.reg))
}

func pkKey(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": s(pk)}
}

// Every write path stores the ttl field as a number of Unix seconds, and
// the zero time as no attribute; reads bring the time back.
func TestTTLStoredAsUnixSeconds(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r := sessions(t, f)
	at := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	want := fmt.Sprint(at.Unix())
	if err := r.Put(ctx, Session{PK: "put", User: "ann", Token: field.NewEncrypted("t1"), Expires: at}); err != nil {
		t.Fatal(err)
	}
	if err := r.BatchPut(ctx, []Session{{PK: "batch", User: "bob", Expires: at}, {PK: "never", User: "cy"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Update(ctx, repo.Key{Hash: "update"}, repo.NewUpdate().Set("user", "dee").Set("expires", at)); err != nil {
		t.Fatal(err)
	}
	for _, pk := range []string{"put", "batch", "update"} {
		n, ok := f.rawItem(t, r.Table(), pkKey(pk))["expires"].(*types.AttributeValueMemberN)
		if !ok || n.Value != want {
			t.Errorf("%s: expires stored as %#v, want the number %s", pk, f.rawItem(t, r.Table(), pkKey(pk))["expires"], want)
		}
	}
	if v, ok := f.rawItem(t, r.Table(), pkKey("never"))["expires"]; ok {
		t.Errorf("the zero time is stored as %#v; want no attribute", v)
	}
	got, err := r.Get(ctx, repo.Key{Hash: "put"})
	if err != nil || !got.Expires.Equal(at) {
		t.Fatalf("Get = %v, %v; want Expires %v", got.Expires, err, at)
	}
	// Set to the zero time removes the attribute.
	if _, err := r.Update(ctx, repo.Key{Hash: "update"}, repo.NewUpdate().Set("expires", time.Time{})); err != nil {
		t.Fatal(err)
	}
	if v, ok := f.rawItem(t, r.Table(), pkKey("update"))["expires"]; ok {
		t.Errorf("Set to the zero time left expires = %#v", v)
	}
}

// SkipExpired leaves out items whose ttl has passed on every read, with no
// KMS call for them, and counts agree with reads.
func TestSkipExpiredOnEveryRead(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r := sessions(t, f)
	now := time.Now()
	items := []Session{
		{PK: "old", User: "ann", Expires: now.Add(-time.Hour)},
		{PK: "new", User: "bob", Expires: now.Add(time.Hour)},
		{PK: "never", User: "cy"},
	}
	for _, it := range items {
		it.Token = field.NewEncrypted("token of " + it.User)
		if err := r.Put(ctx, it); err != nil { // one data key each
			t.Fatal(err)
		}
	}
	// DynamoDB expires only a number; a string there never expires.
	f.rawPut(t, r.Table(), map[string]types.AttributeValue{"pk": s("text"), "user": s("dan"), "expires": s("2001-01-01T00:00:00Z")})
	decrypts := func() int64 { return r.Encryptor().Stats().DecryptCalls }

	before := decrypts()
	if _, err := r.Get(ctx, repo.Key{Hash: "old"}, repo.SkipExpired()); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("Get of an expired item: %v, want ErrNotFound", err)
	}
	if _, err := r.Get(ctx, repo.Key{Hash: "old"}, repo.SkipExpired(), repo.Project("user")); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("projected Get of an expired item: %v, want ErrNotFound", err)
	}
	if _, err := r.Get(ctx, repo.Key{Hash: "text"}, repo.SkipExpired()); err != nil {
		t.Fatalf("Get of an item with a string expiry: %v", err)
	}
	got, err := r.BatchGet(ctx, []repo.Key{{Hash: "old"}}, repo.SkipExpired())
	if err != nil || len(got) != 0 {
		t.Fatalf("BatchGet of an expired item = %v, %v", got, err)
	}
	if _, err := r.QueryPage(ctx, expression.Key("pk").Equal(expression.Value("old")), "", repo.SkipExpired()); err != nil {
		t.Fatal(err)
	}
	if d := decrypts() - before; d != 0 {
		t.Fatalf("reads of an expired item made %d Decrypt calls", d)
	}
	if got, err := r.Get(ctx, repo.Key{Hash: "old"}); err != nil || got.User != "ann" {
		t.Fatalf("without SkipExpired the expired item is still read: %v, %v", got, err)
	}

	wantUsers := []string{"bob", "cy", "dan"}
	got, err = r.BatchGet(ctx, []repo.Key{{Hash: "old"}, {Hash: "new"}, {Hash: "never"}, {Hash: "text"}}, repo.SkipExpired())
	if err != nil || !slices.Equal(usersOf(got), wantUsers) {
		t.Fatalf("BatchGet = %v, %v; want %v", usersOf(got), err, wantUsers)
	}
	var scanned []Session
	for it, err := range r.Scan(ctx, repo.SkipExpired(), repo.ConsistentRead()) {
		if err != nil {
			t.Fatal(err)
		}
		scanned = append(scanned, it)
	}
	if users := usersOf(scanned); !slices.Equal(users, wantUsers) {
		t.Fatalf("Scan = %v, want %v", users, wantUsers)
	}
	page, err := r.ScanPage(ctx, "", repo.SkipExpired(), repo.ConsistentRead())
	if err != nil || !slices.Equal(usersOf(page.Items), wantUsers) {
		t.Fatalf("ScanPage = %v, %v", usersOf(page.Items), err)
	}
	if n, err := r.ScanCount(ctx, repo.SkipExpired(), repo.ConsistentRead()); err != nil || n != 3 {
		t.Fatalf("ScanCount = %d, %v; want 3", n, err)
	}
	notBob := repo.Filter(expression.Name("user").NotEqual(expression.Value("bob")))
	if n, err := r.ScanCount(ctx, notBob, repo.SkipExpired(), repo.ConsistentRead()); err != nil || n != 2 {
		t.Fatalf("ScanCount with a filter = %d, %v; want 2", n, err)
	}
	for pk, want := range map[string]int64{"old": 0, "new": 1} {
		key := expression.Key("pk").Equal(expression.Value(pk))
		if n, err := r.QueryCount(ctx, key, repo.SkipExpired(), repo.ConsistentRead()); err != nil || n != want {
			t.Fatalf("QueryCount %s = %d, %v; want %d", pk, n, err, want)
		}
		var n int64
		for _, err := range r.Query(ctx, key, repo.SkipExpired(), repo.ConsistentRead()) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != want {
			t.Fatalf("Query %s: %d items, want %d", pk, n, want)
		}
	}
}

func usersOf(items []Session) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.User)
	}
	slices.Sort(out)
	return out
}

func TestEnableTTL(t *testing.T) {
	f := newFixture(t)
	if f.env.Backend == "strict" {
		t.Skip("dynalite has no UpdateTimeToLive")
	}
	ctx := context.Background()
	r := sessions(t, f)
	if err := r.EnableTTL(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := f.env.DynamoDB.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(r.Table())})
	if err != nil {
		t.Fatal(err)
	}
	d := out.TimeToLiveDescription
	if d == nil || aws.ToString(d.AttributeName) != "expires" ||
		(d.TimeToLiveStatus != types.TimeToLiveStatusEnabled && d.TimeToLiveStatus != types.TimeToLiveStatusEnabling) {
		t.Fatalf("TTL after EnableTTL: %+v", d)
	}
	// Enabling again is not an error (DynamoDB itself refuses it).
	if err := r.EnableTTL(ctx); err != nil {
		t.Fatalf("EnableTTL on a table with TTL on: %v", err)
	}
	if err := users(t, f).EnableTTL(ctx); err == nil {
		t.Fatal("EnableTTL on a type without a ttl field")
	}
}
