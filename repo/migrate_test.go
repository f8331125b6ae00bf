package repo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/internal/fakedynamo"
	"github.com/dynoseal/dynoseal/repo"
)

// Member is the item type of the migration tests.
type Member struct {
	PK    string                    `dynamodbav:"pk" repo:"hash"`
	Name  string                    `dynamodbav:"name"`
	SSN   field.Encrypted[string]   `dynamodbav:"ssn" enc:"pii"`
	Cards []field.Encrypted[string] `dynamodbav:"cards" enc:"pii"`
}

// migEnv is an in-process DynamoDB with a "members" table, and a KMS.
type migEnv struct {
	fake *fakedynamo.Transport
	db   repo.API
	keys *enctest.Provider
}

func newMigEnv(t testing.TB) *migEnv {
	t.Helper()
	f := fakedynamo.New()
	if err := f.AddTable("members", fakedynamo.KeyAttribute{Name: "pk", Type: "S"}); err != nil {
		t.Fatal(err)
	}
	return &migEnv{fake: f, db: f.Client(), keys: enctest.New()}
}

func (e *migEnv) repo(t testing.TB, spec enc.Spec, opts ...repo.Option) *repo.Repo[Member] {
	t.Helper()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", spec)
	r, err := repo.New[Member]("members", append([]repo.Option{repo.WithClient(e.db), repo.WithRegistry(reg), repo.WithEncryptor(enc.New(e.keys))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var (
	migOld     = enc.Spec{KeyID: "key-old"}
	migCurrent = enc.Spec{KeyID: "key-new", PreviousKeyIDs: []string{"key-old"}, Version: enc.Version2}
	migFinal   = enc.Spec{KeyID: "key-new", Version: enc.Version2, RequireSealed: true, MinVersion: enc.Version2}
)

func migMember(i int) Member {
	return Member{PK: fmt.Sprintf("M#%05d", i), Name: "member", SSN: field.NewEncrypted(fmt.Sprintf("ssn-%d", i)),
		Cards: []field.Encrypted[string]{field.NewEncrypted(fmt.Sprintf("card-%d", i))}}
}

// seed writes n members: a third plaintext, a third version 1 under the old
// key, a third version 2 under the current key.
func (e *migEnv) seed(t testing.TB, n int) {
	t.Helper()
	ctx := context.Background()
	var v1, v2 []Member
	var plain []types.WriteRequest
	for i := range n {
		m := migMember(i)
		switch i % 3 {
		case 0:
			plain = append(plain, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: m.PK}, "name": &types.AttributeValueMemberS{Value: m.Name},
				"ssn":   &types.AttributeValueMemberS{Value: fmt.Sprintf("ssn-%d", i)},
				"cards": &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberS{Value: fmt.Sprintf("card-%d", i)}}},
			}}})
		case 1:
			v1 = append(v1, m)
		default:
			v2 = append(v2, m)
		}
	}
	for len(plain) > 0 {
		k := min(25, len(plain))
		if _, err := e.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{"members": plain[:k]}}); err != nil {
			t.Fatal(err)
		}
		plain = plain[k:]
	}
	if err := e.repo(t, migOld).BatchPut(ctx, v1); err != nil {
		t.Fatal(err)
	}
	if err := e.repo(t, migCurrent).BatchPut(ctx, v2); err != nil {
		t.Fatal(err)
	}
}

// check reads every member under the final spec and checks its values.
func (e *migEnv) check(t *testing.T, n int, want func(i int) string) {
	t.Helper()
	seen := 0
	for m, err := range e.repo(t, migFinal).Scan(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		var i int
		fmt.Sscanf(m.PK, "M#%d", &i)
		if got, err := m.SSN.Value(); err != nil || got != want(i) {
			t.Fatalf("%s: ssn %q, %v; want %q", m.PK, got, err, want(i))
		}
		if got, err := m.Cards[0].Value(); err != nil || got != fmt.Sprintf("card-%d", i) {
			t.Fatalf("%s: card %q, %v", m.PK, got, err)
		}
		seen++
	}
	if seen != n {
		t.Fatalf("%d members read, want %d", seen, n)
	}
}

func TestMigrateMixedTable(t *testing.T) {
	ctx := context.Background()
	e := newMigEnv(t)
	const n = 300
	e.seed(t, n)
	r := e.repo(t, migCurrent)
	var calls int
	st, err := r.Migrate(ctx, repo.MigrateBatchSize(50), repo.MigrateProgress(func(repo.MigrateStats) { calls++ }))
	if err != nil {
		t.Fatal(err)
	}
	if st.Scanned != n || st.Changed != 2*n/3 || st.Skipped != n/3 || st.Failed != 0 || st.Values != 2*2*n/3 || calls < n/50 || calls > n/50+1 || st.Next != "" {
		t.Fatalf("stats %+v after %d progress calls", st, calls)
	}
	// One Decrypt per seeded data key (two BatchPut calls), one
	// GenerateDataKey per page (the last, empty page, which a Limit-cut
	// page before it makes DynamoDB send, makes none).
	if st.KMSCalls != 2+n/50 {
		t.Fatalf("%d KMS calls, want %d", st.KMSCalls, 2+n/50)
	}
	e.check(t, n, func(i int) string { return fmt.Sprintf("ssn-%d", i) })
	updates := e.fake.Requests("UpdateItem")
	again, err := r.Migrate(ctx)
	if err != nil || again.Changed != 0 || again.Skipped != n || e.fake.Requests("UpdateItem") != updates {
		t.Fatalf("second run: %+v, %v, %d writes", again, err, e.fake.Requests("UpdateItem")-updates)
	}
	dry, err := e.repo(t, migCurrent).Migrate(ctx, repo.MigrateDryRun())
	if err != nil || dry.Changed != 0 {
		t.Fatalf("dry run of a migrated table: %+v, %v", dry, err)
	}
}

// A version-1 spec moving key only rewraps each data key with ReEncrypt,
// once for the run, and keeps every value's body.
func TestMigrateKeyOnlyByReEncrypt(t *testing.T) {
	ctx := context.Background()
	e := newMigEnv(t)
	old := e.repo(t, migOld)
	var items []Member
	for i := range 60 {
		items = append(items, migMember(i))
	}
	if err := old.BatchPut(ctx, items); err != nil {
		t.Fatal(err)
	}
	before := e.keys.Decrypts.Load()
	st, err := e.repo(t, enc.Spec{KeyID: "key-new", PreviousKeyIDs: []string{"key-old"}}).Migrate(ctx, repo.MigrateBatchSize(20))
	if err != nil || st.Changed != 60 {
		t.Fatalf("%+v, %v", st, err)
	}
	if re, d := e.keys.ReEncrypts.Load(), e.keys.Decrypts.Load()-before; re != 1 || d != 0 {
		t.Fatalf("%d ReEncrypt and %d Decrypt calls for one data key over 3 pages, want 1 and 0", re, d)
	}
	for m, err := range e.repo(t, enc.Spec{KeyID: "key-new"}).Scan(ctx) {
		if v, verr := m.SSN.Value(); err != nil || verr != nil || !strings.HasPrefix(v, "ssn-") {
			t.Fatalf("%s after rewrap: %q, %v %v", m.PK, v, err, verr)
		}
	}
}

// raceDB changes an item's SSN right before the migration's write of it,
// as a concurrent writer would, the first times times.
type raceDB struct {
	repo.API
	mu    sync.Mutex
	times map[string]int
	write func(pk string, n int)
}

func (d *raceDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	pk := in.Key["pk"].(*types.AttributeValueMemberS).Value
	d.mu.Lock()
	n := d.times[pk]
	if n > 0 {
		d.times[pk] = n - 1
	}
	d.mu.Unlock()
	if n > 0 {
		d.write(pk, n)
	}
	return d.API.UpdateItem(ctx, in, opts...)
}

// A value changed between the migration's read and write is not
// overwritten: the item is read again and migrated anew, or, after the
// attempts, reported.
func TestMigrateKeepsConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	e := newMigEnv(t)
	e.seed(t, 30)
	race := &raceDB{API: e.db, times: map[string]int{"M#00000": 1, "M#00003": 2, "M#00006": 9}}
	race.write = func(pk string, n int) {
		// An old writer that still stores plaintext.
		_, err := e.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String("members"),
			Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}}, UpdateExpression: aws.String("SET #s = :v"),
			ExpressionAttributeNames: map[string]string{"#s": "ssn"}, ExpressionAttributeValues: map[string]types.AttributeValue{":v": &types.AttributeValueMemberS{Value: fmt.Sprintf("changed %s %d", pk, n)}}})
		if err != nil {
			t.Error(err)
		}
	}
	r := e.repo(t, migCurrent, repo.WithClient(race))
	st, err := r.Migrate(ctx, repo.MigrateAttempts(3))
	var ie *repo.ItemError
	if !errors.As(err, &ie) || ie.Key.Hash != "M#00006" || st.Failed != 1 || st.Retried != 1+2+2 {
		t.Fatalf("err = %v, stats %+v; want M#00006 failed after 3 attempts and 5 items read again", err, st)
	}
	// The failed item keeps the writer's value; a run once the writer is
	// gone migrates it.
	race.times = nil
	if _, err := r.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e.check(t, 30, func(i int) string {
		switch i {
		case 0, 3:
			return fmt.Sprintf("changed M#%05d 1", i) // the writer's last value
		case 6:
			return "changed M#00006 7" // written 3 times (9, 8, 7) before the item was given up
		}
		return fmt.Sprintf("ssn-%d", i)
	})
}

func TestMigrateRefusals(t *testing.T) {
	ctx := context.Background()
	e := newMigEnv(t)
	e.seed(t, 10)
	r := e.repo(t, migCurrent)
	token := ""
	if _, err := r.Migrate(ctx, repo.MigrateSegment(0, 2), repo.MigrateBatchSize(1), repo.MigrateProgress(func(s repo.MigrateStats) {
		if token == "" {
			token = s.Next
		}
	})); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		r    *repo.Repo[Member]
		opts []repo.MigrateOption
		want string
	}{
		"segment past the end":     {r, []repo.MigrateOption{repo.MigrateSegment(2, 2)}, "segment 2 of 2"},
		"segment without total":    {r, []repo.MigrateOption{repo.MigrateSegment(1, 0)}, "segment 1 of 0"},
		"batch size":               {r, []repo.MigrateOption{repo.MigrateBatchSize(0)}, "batch size 0"},
		"attempts":                 {r, []repo.MigrateOption{repo.MigrateAttempts(0)}, "0 attempts"},
		"rate":                     {r, []repo.MigrateOption{repo.MigrateItemsPerSecond(-1)}, "negative rate"},
		"token of another segment": {r, []repo.MigrateOption{repo.MigrateSegment(1, 2), repo.MigrateFrom(token)}, "invalid page token"},
		"ReadOnly":                 {e.repo(t, migCurrent, repo.WithMode(enc.ReadOnly)), nil, "needs ReadWrite"},
	} {
		t.Run(name, func(t *testing.T) {
			scans := e.fake.Requests("Scan")
			_, err := c.r.Migrate(ctx, c.opts...)
			if err == nil || !strings.Contains(err.Error(), c.want) || e.fake.Requests("Scan") != scans {
				t.Fatalf("err = %v after %d scans; want %q before any", err, e.fake.Requests("Scan")-scans, c.want)
			}
		})
	}
}

// A value under a key the spec does not allow fails its item alone.
func TestMigrateReportsValuesItCannotOpen(t *testing.T) {
	ctx := context.Background()
	e := newMigEnv(t)
	e.seed(t, 9)
	if err := e.repo(t, enc.Spec{KeyID: "key-stranger"}).Put(ctx, migMember(100)); err != nil {
		t.Fatal(err)
	}
	st, err := e.repo(t, migCurrent).Migrate(ctx)
	if !errors.Is(err, enc.ErrKeyNotAllowed) || st.Failed != 1 || st.Changed != 6 {
		t.Fatalf("err = %v, stats %+v; want the stranger's item failed and 6 migrated", err, st)
	}
	if !strings.Contains(err.Error(), "M#00100") {
		t.Fatalf("error %q does not name the item", err)
	}
}

// A versioned item's version goes up, so a writer holding it as it was
// cannot put the old form back.
func TestMigrateIncreasesTheVersion(t *testing.T) {
	type Versioned struct {
		PK      string                  `dynamodbav:"pk" repo:"hash"`
		SSN     field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
		Version int64                   `dynamodbav:"v" repo:"version"`
	}
	ctx := context.Background()
	e := newMigEnv(t)
	reg := enc.NewRegistry()
	reg.MustRegister("pii", migCurrent)
	r, err := repo.New[Versioned]("members", repo.WithClient(e.db), repo.WithRegistry(reg), repo.WithEncryptor(enc.New(e.keys)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("members"), Item: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "V"}, "ssn": &types.AttributeValueMemberS{Value: "plain"}, "v": &types.AttributeValueMemberN{Value: "4"}}})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := r.Migrate(ctx); err != nil || st.Changed != 1 {
		t.Fatalf("%+v, %v", st, err)
	}
	got, err := r.Get(ctx, repo.Key{Hash: "V"})
	if err != nil || got.Version != 5 {
		t.Fatalf("after the migration: version %d, %v; want 5", got.Version, err)
	}
	if v, err := got.SSN.Value(); err != nil || v != "plain" || !got.SSN.IsSealed() {
		t.Fatalf("ssn %q, %v, sealed %v", v, err, got.SSN.IsSealed())
	}
}

// A change of static context, which values do not record: values sealed
// under the old spec are opened under it and sealed under the current one;
// those written under the current one already are left alone.
func TestMigrateFromSpecChangesTheContext(t *testing.T) {
	ctx := context.Background()
	e := newMigEnv(t)
	old := enc.Spec{KeyID: "key-new", Context: map[string]string{"app": "billing-v1"}}
	current := enc.Spec{KeyID: "key-new", Context: map[string]string{"app": "billing-v2"}}
	var before, after []Member
	for i := range 10 {
		if i < 6 {
			before = append(before, migMember(i))
		} else {
			after = append(after, migMember(i))
		}
	}
	if err := e.repo(t, old).BatchPut(ctx, before); err != nil {
		t.Fatal(err)
	}
	if err := e.repo(t, current).BatchPut(ctx, after); err != nil {
		t.Fatal(err)
	}
	r := e.repo(t, current)
	if _, err := r.Migrate(ctx, repo.MigrateFromSpec("other", old)); err == nil || !strings.Contains(err.Error(), `"other"`) {
		t.Fatalf("MigrateFromSpec of a spec the type does not use: %v", err)
	}
	st, err := r.Migrate(ctx, repo.MigrateFromSpec("pii", old))
	if err != nil || st.Changed != 6 || st.Skipped != 4 {
		t.Fatalf("%+v, %v; want the 6 old items changed", st, err)
	}
	n := 0
	for m, err := range e.repo(t, current).Scan(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		var i int
		fmt.Sscanf(m.PK, "M#%d", &i)
		if v, err := m.SSN.Value(); err != nil || v != fmt.Sprintf("ssn-%d", i) {
			t.Fatalf("%s: %q, %v", m.PK, v, err)
		}
		n++
	}
	if n != 10 {
		t.Fatalf("%d items open under the new context, want 10", n)
	}
}
