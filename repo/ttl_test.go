package repo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// session is an item with an expiry time and an encrypted value, so that
// a test can tell whether an expired item was opened.
type session struct {
	PK      string                  `dynamodbav:"pk" repo:"hash"`
	User    string                  `dynamodbav:"user"`
	Token   field.Encrypted[string] `dynamodbav:"token" enc:"pii"`
	Expires time.Time               `dynamodbav:"expires" repo:"ttl"`
}

// ttlDB is a trapDB that records GetItem and UpdateItem requests and
// accepts an update that only removes attributes.
type ttlDB struct {
	*trapDB
	mu      sync.Mutex
	gets    []dynamodb.GetItemInput
	updates []dynamodb.UpdateItemInput
}

func (d *ttlDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	d.mu.Lock()
	d.gets = append(d.gets, *in)
	d.mu.Unlock()
	return d.trapDB.GetItem(ctx, in, opts...)
}

func (d *ttlDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	d.mu.Lock()
	d.updates = append(d.updates, *in)
	d.mu.Unlock()
	if strings.HasPrefix(aws.ToString(in.UpdateExpression), "REMOVE ") {
		return &dynamodb.UpdateItemOutput{}, nil
	}
	return d.trapDB.UpdateItem(ctx, in, opts...)
}

func sessionRepo(t *testing.T) (*repo.Repo[session], *ttlDB) {
	t.Helper()
	db := &ttlDB{trapDB: newTrapDB("sessions", "pk")}
	r, err := repo.New[session]("sessions", repo.WithRegistry(trapRegistry(t)), repo.WithEncryptor(enc.New(enctest.New())), repo.WithClient(db))
	if err != nil {
		t.Fatal(err)
	}
	return r, db
}

func unixN(t time.Time) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: fmt.Sprint(t.Unix())}
}

func TestTTLStoredAsUnixSecondsOnEveryWrite(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2031, 5, 6, 7, 8, 9, 500, time.FixedZone("x", 3600))
	r, db := sessionRepo(t)
	s := session{PK: "s1", Expires: at, Token: field.NewEncrypted("t")}

	m, err := r.Marshal(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if got := describeAV(m["expires"]); got != describeAV(unixN(at)) {
		t.Errorf("Marshal: expires is %s, want %s", got, describeAV(unixN(at)))
	}
	if err := r.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	if got := describeAV(db.get(trapKey("s1"))["expires"]); got != describeAV(unixN(at)) {
		t.Errorf("Put: expires is %s", got)
	}
	s.PK = "s2"
	if err := r.BatchPut(ctx, []session{s}); err != nil {
		t.Fatal(err)
	}
	if got := describeAV(db.get(trapKey("s2"))["expires"]); got != describeAV(unixN(at)) {
		t.Errorf("BatchPut: expires is %s", got)
	}
	got, err := r.Get(ctx, repo.Key{Hash: "s2"})
	if err != nil || !got.Expires.Equal(at.Truncate(time.Second)) {
		t.Fatalf("Get = %v, %v; want Expires %v (whole seconds)", got.Expires, err, at)
	}
}

func TestTTLZeroStoresNothing(t *testing.T) {
	ctx := context.Background()
	type pointer struct {
		PK  string     `dynamodbav:"pk" repo:"hash"`
		Exp *time.Time `dynamodbav:"exp" repo:"ttl"`
	}
	type unsigned struct {
		PK  string `dynamodbav:"pk" repo:"hash"`
		Exp uint32 `dynamodbav:"exp,omitempty" repo:"ttl"`
	}
	type nullEmpty struct {
		PK  string    `dynamodbav:"pk" repo:"hash"`
		Exp time.Time `dynamodbav:"exp,nullempty" repo:"ttl"`
	}
	at := time.Unix(1900000000, 0)
	for _, c := range []struct {
		name       string
		zero, some func(context.Context) (map[string]types.AttributeValue, error)
	}{
		{"*time.Time", marshalOne(t, pointer{PK: "a"}), marshalOne(t, pointer{PK: "a", Exp: &at})},
		{"uint32", marshalOne(t, unsigned{PK: "a"}), marshalOne(t, unsigned{PK: "a", Exp: uint32(at.Unix())})},
		{"nullempty time.Time", marshalOne(t, nullEmpty{PK: "a"}), marshalOne(t, nullEmpty{PK: "a", Exp: at})},
		{"time.Time", marshalOne(t, session{PK: "a"}), marshalOne(t, session{PK: "a", Expires: at})},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := c.zero(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for name, v := range m {
				if name != "pk" && name != "user" && name != "token" {
					t.Errorf("the zero expiry is stored as %s = %s; it must store nothing", name, describeAV(v))
				}
			}
			if m, err = c.some(ctx); err != nil {
				t.Fatal(err)
			}
			for name, v := range m {
				if name != "pk" && name != "user" && name != "token" && describeAV(v) != describeAV(unixN(at)) {
					t.Errorf("%s = %s, want %s", name, describeAV(v), describeAV(unixN(at)))
				}
			}
		})
	}
}

// marshalOne returns a function that marshals item with a repository of
// its type.
func marshalOne[T any](t *testing.T, item T) func(context.Context) (map[string]types.AttributeValue, error) {
	r, err := repo.New[T]("t", repo.WithRegistry(trapRegistry(t)), repo.WithEncryptor(enc.New(enctest.New())), repo.WithClient(newTrapDB("t", "pk")))
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context) (map[string]types.AttributeValue, error) { return r.Marshal(ctx, item) }
}

func TestTTLReadsBackIntoEachFieldType(t *testing.T) {
	ctx := context.Background()
	type all struct {
		PK  string     `dynamodbav:"pk" repo:"hash"`
		Exp *time.Time `dynamodbav:"exp" repo:"ttl"`
	}
	type unix struct {
		PK  string `dynamodbav:"pk" repo:"hash"`
		Exp int64  `dynamodbav:"exp" repo:"ttl"`
	}
	m := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "a"}, "exp": &types.AttributeValueMemberN{Value: "1900000000"}}
	rp, _ := repo.New[all]("t", repo.WithEncryptor(enc.New(enctest.New())), repo.WithClient(newTrapDB("t", "pk")))
	p, err := rp.Unmarshal(ctx, m)
	if err != nil || p.Exp == nil || p.Exp.Unix() != 1900000000 {
		t.Fatalf("*time.Time from N: %v, %v", p.Exp, err)
	}
	ru, _ := repo.New[unix]("t", repo.WithEncryptor(enc.New(enctest.New())), repo.WithClient(newTrapDB("t", "pk")))
	u, err := ru.Unmarshal(ctx, m)
	if err != nil || u.Exp != 1900000000 {
		t.Fatalf("int64 from N: %v, %v", u.Exp, err)
	}
}

func TestTTLRoleRefusals(t *testing.T) {
	type str struct {
		PK  string `dynamodbav:"pk" repo:"hash"`
		Exp string `dynamodbav:"exp" repo:"ttl"`
	}
	type float struct {
		PK  string  `dynamodbav:"pk" repo:"hash"`
		Exp float64 `dynamodbav:"exp" repo:"ttl"`
	}
	type encrypted struct {
		PK  string                     `dynamodbav:"pk" repo:"hash"`
		Exp field.Encrypted[time.Time] `dynamodbav:"exp" enc:"pii" repo:"ttl"`
	}
	type asString struct {
		PK  string `dynamodbav:"pk" repo:"hash"`
		Exp int64  `dynamodbav:"exp,string" repo:"ttl"`
	}
	type timeAsString struct {
		PK  string    `dynamodbav:"pk" repo:"hash"`
		Exp time.Time `dynamodbav:"exp,string" repo:"ttl"`
	}
	type unixtimeInt struct {
		PK  string `dynamodbav:"pk" repo:"hash"`
		Exp int64  `dynamodbav:"exp,unixtime" repo:"ttl"`
	}
	type pointerInt struct {
		PK  string `dynamodbav:"pk" repo:"hash"`
		Exp *int64 `dynamodbav:"exp" repo:"ttl"`
	}
	type twoTTLs struct {
		PK string    `dynamodbav:"pk" repo:"hash"`
		A  time.Time `dynamodbav:"a" repo:"ttl"`
		B  time.Time `dynamodbav:"b" repo:"ttl"`
	}
	type ttlKey struct {
		PK  string `dynamodbav:"pk" repo:"hash"`
		Exp int64  `dynamodbav:"exp" repo:"range,ttl"`
	}
	for _, c := range []struct {
		name  string
		new   func(*testing.T) error
		wants []string
	}{
		{"string", trapNew[str], []string{"Exp", "time.Time", "string"}},
		{"float64", trapNew[float], []string{"Exp", "float64"}},
		{"encrypted", trapNew[encrypted], []string{"Exp", "encrypted"}},
		{",string on an integer", trapNew[asString], []string{"Exp", `"string"`, "number"}},
		{",string on a time", trapNew[timeAsString], []string{"Exp", `"string"`}},
		{",unixtime on an integer", trapNew[unixtimeInt], []string{"Exp", "unixtime"}},
		{"*int64", trapNew[pointerInt], []string{"Exp", "*int64"}},
		{"two ttl fields", trapNew[twoTTLs], []string{"ttl", "A", "B"}},
		{"ttl and a key", trapNew[ttlKey], []string{"Exp", "ttl", "combined"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.new(t)
			if err == nil {
				t.Fatal("New accepted it")
			}
			trapRequireText(t, err, c.wants...)
		})
	}
}

func TestTTLUpdateSetStoresUnixSeconds(t *testing.T) {
	ctx := context.Background()
	r, db := sessionRepo(t)
	at := time.Unix(1900000000, 0)
	if _, err := r.Update(ctx, repo.Key{Hash: "s1"}, repo.NewUpdate().Set("expires", at)); err != nil {
		t.Fatal(err)
	}
	if got := describeAV(db.get(trapKey("s1"))["expires"]); got != describeAV(unixN(at)) {
		t.Fatalf("Set stored expires as %s, want %s", got, describeAV(unixN(at)))
	}
	if _, err := r.Update(ctx, repo.Key{Hash: "s1"}, repo.NewUpdate().Set("expires", time.Time{})); err != nil {
		t.Fatal(err)
	}
	last := db.updates[len(db.updates)-1]
	if got := strings.TrimSpace(resolveExpr(aws.ToString(last.UpdateExpression), last.ExpressionAttributeNames, last.ExpressionAttributeValues)); got != "REMOVE expires" {
		t.Fatalf("Set to the zero time sent %q, want REMOVE expires", got)
	}
	if _, err := r.Update(ctx, repo.Key{Hash: "s1"}, repo.NewUpdate().Add("expires", at)); !errors.Is(err, repo.ErrInvalidUpdate) {
		t.Fatalf("Add of a time to the ttl attribute: %v", err)
	}
}

// putSessions stores s1 (expired an hour ago), s2 (expires in an hour) and
// s3 (no expiry), each with a sealed token.
func putSessions(t *testing.T, r *repo.Repo[session]) {
	t.Helper()
	now := time.Now()
	for _, s := range []session{
		{PK: "s1", User: "ann", Expires: now.Add(-time.Hour)},
		{PK: "s2", User: "bob", Expires: now.Add(time.Hour)},
		{PK: "s3", User: "cy"},
	} {
		s.Token = field.NewEncrypted("token of " + s.User)
		if err := r.Put(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSkipExpiredGetOpensNothingExpired(t *testing.T) {
	ctx := context.Background()
	r, db := sessionRepo(t)
	putSessions(t, r)
	before := r.Encryptor().Stats().DecryptCalls
	if _, err := r.Get(ctx, repo.Key{Hash: "s1"}, repo.SkipExpired()); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("Get of an expired item with SkipExpired: %v, want ErrNotFound", err)
	}
	if after := r.Encryptor().Stats().DecryptCalls; after != before {
		t.Fatalf("Get of an expired item made %d Decrypt calls", after-before)
	}
	for _, pk := range []string{"s2", "s3"} {
		if _, err := r.Get(ctx, repo.Key{Hash: pk}, repo.SkipExpired()); err != nil {
			t.Fatalf("Get %s: %v", pk, err)
		}
	}
	if got, err := r.Get(ctx, repo.Key{Hash: "s1"}); err != nil || got.User != "ann" {
		t.Fatalf("Get of an expired item without SkipExpired: %v, %v", got, err)
	}
	// A projection without the ttl attribute still tells expired items.
	if _, err := r.Get(ctx, repo.Key{Hash: "s1"}, repo.SkipExpired(), repo.Project("user")); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("projected Get of an expired item: %v", err)
	}
	last := db.gets[len(db.gets)-1]
	if got := resolveExpr(aws.ToString(last.ProjectionExpression), last.ExpressionAttributeNames, nil); !strings.Contains(got, "expires") {
		t.Fatalf("projection %q leaves out the ttl attribute", got)
	}
}

func TestSkipExpiredBatchGetLeavesExpiredOut(t *testing.T) {
	ctx := context.Background()
	r, _ := sessionRepo(t)
	putSessions(t, r)
	before := r.Encryptor().Stats().DecryptCalls
	got, err := r.BatchGet(ctx, []repo.Key{{Hash: "s1"}}, repo.SkipExpired())
	if err != nil || len(got) != 0 {
		t.Fatalf("BatchGet of an expired item = %v, %v; want nothing", got, err)
	}
	if after := r.Encryptor().Stats().DecryptCalls; after != before {
		t.Fatalf("BatchGet of an expired item made %d Decrypt calls", after-before)
	}
	got, err = r.BatchGet(ctx, []repo.Key{{Hash: "s1"}, {Hash: "s2"}, {Hash: "s3"}}, repo.SkipExpired(), repo.Project("user"))
	if err != nil || len(got) != 2 || got[0].User != "bob" || got[1].User != "cy" {
		t.Fatalf("BatchGet = %+v, %v; want bob and cy", got, err)
	}
}

// The reads that take filters leave expired items out on the server, with
// the user's filters, so counts agree with reads and nothing expired is
// read, let alone opened.
func TestSkipExpiredFiltersOnTheServer(t *testing.T) {
	ctx := context.Background()
	byUser := repo.Filter(expression.Name("user").Equal(expression.Value("bob")))
	key := expression.Key("pk").Equal(expression.Value("s2"))
	r, db := sessionRepo(t)
	reads := map[string]func() error{
		"Query": func() error {
			for _, err := range r.Query(ctx, key, byUser, repo.SkipExpired()) {
				return err
			}
			return nil
		},
		"Scan": func() error {
			for _, err := range r.Scan(ctx, byUser, repo.SkipExpired()) {
				return err
			}
			return nil
		},
		"QueryPage": func() error { _, err := r.QueryPage(ctx, key, "", byUser, repo.SkipExpired()); return err },
		"ScanPage":  func() error { _, err := r.ScanPage(ctx, "", byUser, repo.SkipExpired()); return err },
		"QueryCount": func() error {
			_, err := r.QueryCount(ctx, key, byUser, repo.SkipExpired())
			return err
		},
		"ScanCount": func() error { _, err := r.ScanCount(ctx, byUser, repo.SkipExpired()); return err },
	}
	for name, read := range reads {
		t.Run(name, func(t *testing.T) {
			before := time.Now().Unix()
			if err := read(); err != nil {
				t.Fatal(err)
			}
			queries, scans := db.reads()
			var filter string
			var values map[string]types.AttributeValue
			var nameMap map[string]string
			if strings.HasPrefix(name, "Query") {
				in := queries[len(queries)-1]
				filter, nameMap, values = aws.ToString(in.FilterExpression), in.ExpressionAttributeNames, in.ExpressionAttributeValues
			} else {
				in := scans[len(scans)-1]
				filter, nameMap, values = aws.ToString(in.FilterExpression), in.ExpressionAttributeNames, in.ExpressionAttributeValues
			}
			got := resolveExpr(filter, nameMap, values)
			for _, want := range []string{"user", `"bob"`, "attribute_not_exists (expires)", "expires >", "AND"} {
				if !strings.Contains(got, want) {
					t.Errorf("filter %q lacks %q", got, want)
				}
			}
			if !strings.Contains(got, fmt.Sprint(before)) && !strings.Contains(got, fmt.Sprint(before+1)) {
				t.Errorf("filter %q does not compare with the time of the call, %d", got, before)
			}
		})
	}
}

func TestSkipExpiredRefused(t *testing.T) {
	ctx := context.Background()
	users, _, _ := trapRepo(t)
	if _, err := users.Get(ctx, repo.Key{Hash: "u1"}, repo.SkipExpired()); err == nil || !strings.Contains(err.Error(), "ttl") {
		t.Fatalf("Get with SkipExpired on a type without a ttl field: %v", err)
	}
	if _, err := users.ScanCount(ctx, repo.SkipExpired()); err == nil || !strings.Contains(err.Error(), "SkipExpired") {
		t.Fatalf("ScanCount with SkipExpired on a type without a ttl field: %v", err)
	}
	if _, err := users.BatchGet(ctx, []repo.Key{{Hash: "u1"}}, repo.SkipExpired()); err == nil {
		t.Fatal("BatchGet took SkipExpired on a type without a ttl field")
	}
}

// ttlAPI answers the TTL calls of EnableTTL.
type ttlAPI struct {
	repo.API
	status  types.TimeToLiveStatus
	attr    string
	updates []dynamodb.UpdateTimeToLiveInput
}

func (a *ttlAPI) DescribeTimeToLive(_ context.Context, in *dynamodb.DescribeTimeToLiveInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error) {
	d := &types.TimeToLiveDescription{TimeToLiveStatus: a.status}
	if a.attr != "" {
		d.AttributeName = aws.String(a.attr)
	}
	return &dynamodb.DescribeTimeToLiveOutput{TimeToLiveDescription: d}, nil
}

func (a *ttlAPI) UpdateTimeToLive(_ context.Context, in *dynamodb.UpdateTimeToLiveInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error) {
	a.updates = append(a.updates, *in)
	a.status, a.attr = types.TimeToLiveStatusEnabled, aws.ToString(in.TimeToLiveSpecification.AttributeName)
	return &dynamodb.UpdateTimeToLiveOutput{TimeToLiveSpecification: in.TimeToLiveSpecification}, nil
}

func TestEnableTTL(t *testing.T) {
	ctx := context.Background()
	db := &ttlAPI{status: types.TimeToLiveStatusDisabled}
	r, err := repo.New[session]("sessions", repo.WithRegistry(trapRegistry(t)), repo.WithEncryptor(enc.New(enctest.New())), repo.WithClient(db))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.EnableTTL(ctx); err != nil {
		t.Fatal(err)
	}
	if len(db.updates) != 1 || aws.ToString(db.updates[0].TableName) != "sessions" ||
		aws.ToString(db.updates[0].TimeToLiveSpecification.AttributeName) != "expires" || !aws.ToBool(db.updates[0].TimeToLiveSpecification.Enabled) {
		t.Fatalf("UpdateTimeToLive requests: %+v", db.updates)
	}
	if err := r.EnableTTL(ctx); err != nil || len(db.updates) != 1 {
		t.Fatalf("EnableTTL on a table with TTL on already: %v, %d requests", err, len(db.updates))
	}
	db.attr = "other"
	if err := r.EnableTTL(ctx); err == nil || !strings.Contains(err.Error(), `"other"`) {
		t.Fatalf("EnableTTL with TTL on another attribute: %v", err)
	}
	users, _, _ := trapRepo(t)
	if err := users.EnableTTL(ctx); err == nil || !strings.Contains(err.Error(), "ttl") {
		t.Fatalf("EnableTTL on a type without a ttl field: %v", err)
	}
}
