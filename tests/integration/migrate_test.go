package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/dynotest"
	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// migCustomer is stored first in three forms (plaintext, version 1 under an
// old key, version 2 under the current key) and migrated to one.
type migCustomer struct {
	PK    string                    `dynamodbav:"pk" repo:"hash"`
	Name  string                    `dynamodbav:"name"`
	SSN   field.Encrypted[string]   `dynamodbav:"ssn" enc:"pii"`
	Cards []field.Encrypted[string] `dynamodbav:"cards" enc:"pii"`
}

func migSSN(i int) string  { return fmt.Sprintf("%03d-%02d-%04d", i%1000, i%100, i) }
func migCard(i int) string { return fmt.Sprintf("4111%012d", i) }

// migRepo is a repository of the migration table under its own registry.
func migRepo(t *testing.T, f *fixture, table string, spec enc.Spec) *repo.Repo[migCustomer] {
	t.Helper()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", spec)
	return engineRepoOn[migCustomer](t, f, table, repo.WithRegistry(reg))
}

// migTable creates the table of migCustomer items.
func migTable(t *testing.T, f *fixture) string {
	t.Helper()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: f.alias})
	return dynotest.Table[migCustomer](t, f.env, repo.WithRegistry(reg)).Table()
}

// migSeed writes n customers: a third as plaintext (written before the
// fields were encrypted), a third sealed in version 1 under old, a third in
// version 2 under current.
func migSeed(t *testing.T, f *fixture, table string, n int, old, current enc.Spec) {
	t.Helper()
	ctx := context.Background()
	var v1, v2 []migCustomer
	for i := range n {
		c := migCustomer{PK: fmt.Sprintf("C#%04d", i), Name: "customer", SSN: field.NewEncrypted(migSSN(i)),
			Cards: []field.Encrypted[string]{field.NewEncrypted(migCard(i)), field.NewEncrypted(migCard(i + 1))}}
		switch i % 3 {
		case 0:
			f.rawPut(t, table, map[string]types.AttributeValue{"pk": s(c.PK), "name": s(c.Name), "ssn": s(migSSN(i)),
				"cards": &types.AttributeValueMemberL{Value: []types.AttributeValue{s(migCard(i)), s(migCard(i + 1))}}})
		case 1:
			v1 = append(v1, c)
		default:
			v2 = append(v2, c)
		}
	}
	if err := migRepo(t, f, table, old).BatchPut(ctx, v1); err != nil {
		t.Fatal(err)
	}
	if err := migRepo(t, f, table, current).BatchPut(ctx, v2); err != nil {
		t.Fatal(err)
	}
}

// runMigrationWriter changes, while the migration runs, the name of every
// 10th item (a plain field) and the SSN of every 50th (an encrypted one,
// which the migration must not overwrite), and returns the SSNs it set.
func runMigrationWriter(t *testing.T, f *fixture, table string, w *repo.Repo[migCustomer], n int) (*sync.WaitGroup, map[string]string) {
	t.Helper()
	resealed := map[string]string{}
	for i := 1; i < n; i += 50 {
		resealed[fmt.Sprintf("C#%04d", i)] = "999-00-" + fmt.Sprintf("%04d", i)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx := context.Background()
		for i := 0; i < n; i += 10 {
			pk := fmt.Sprintf("C#%04d", i)
			_, err := f.env.DynamoDB.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(table),
				Key: map[string]types.AttributeValue{"pk": s(pk)}, UpdateExpression: aws.String("SET #n = :n"),
				ExpressionAttributeNames: map[string]string{"#n": "name"}, ExpressionAttributeValues: map[string]types.AttributeValue{":n": s("renamed " + pk)}})
			if err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			if ssn, ok := resealed[fmt.Sprintf("C#%04d", i+1)]; ok {
				if _, err := w.Update(ctx, repo.Key{Hash: fmt.Sprintf("C#%04d", i+1)}, repo.NewUpdate().Set("ssn", ssn)); err != nil {
					t.Errorf("writer: %v", err)
					return
				}
			}
		}
	}()
	return &wg, resealed
}

// migCheckAll reads every item under a spec that knows no previous key and
// accepts only sealed version-2 values, and checks what each holds; with
// resealed (the writer's SSNs), also that the writer's changes are there.
func migCheckAll(t *testing.T, final *repo.Repo[migCustomer], n int, resealed map[string]string) {
	t.Helper()
	seen := 0
	for c, err := range final.Scan(context.Background(), repo.ConsistentRead()) {
		if err != nil {
			t.Fatalf("after migration: %v", err)
		}
		seen++
		var i int
		fmt.Sscanf(c.PK, "C#%d", &i)
		want := migSSN(i)
		if s, ok := resealed[c.PK]; ok {
			want = s
		}
		if got, err := c.SSN.Value(); err != nil || got != want {
			t.Fatalf("%s: ssn %q, %v; want %q", c.PK, got, err, want)
		}
		if got, err := c.Cards[1].Value(); err != nil || got != migCard(i+1) {
			t.Fatalf("%s: cards[1] %q, %v", c.PK, got, err)
		}
		if resealed != nil && i%10 == 0 && !strings.HasPrefix(c.Name, "renamed") {
			t.Fatalf("%s: the writer's name change was lost: %q", c.PK, c.Name)
		}
	}
	if seen != n {
		t.Fatalf("read %d items, want %d", seen, n)
	}
}

// Encrypting an attribute that was stored in plaintext, resuming from the
// token of an interrupted run, and splitting the table among segments.
func TestMigrateResumesAndSplits(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	table := migTable(t, f)
	spec := enc.Spec{KeyID: f.alias, Version: enc.Version2}
	const n = 300
	migSeed(t, f, table, n, enc.Spec{KeyID: f.alias}, spec)
	r := migRepo(t, f, table, spec)

	dry, err := r.Migrate(ctx, repo.MigrateDryRun())
	if err != nil || dry.Changed != 2*n/3 || dry.Skipped != n/3 {
		t.Fatalf("dry run: %+v, %v; want %d to change and %d current", dry, err, 2*n/3, n/3)
	}
	// Stop the first segment after its first page, then resume it.
	stop, cancel := context.WithCancel(ctx)
	var token string
	first, err := r.Migrate(stop, repo.MigrateSegment(0, 2), repo.MigrateBatchSize(40), repo.MigrateProgress(func(s repo.MigrateStats) {
		token = s.Next
		cancel()
	}))
	if err == nil || token == "" || first.Next != token {
		t.Fatalf("interrupted run: %+v, %v; want an error and a token", first, err)
	}
	rest, err := r.Migrate(ctx, repo.MigrateSegment(0, 2), repo.MigrateFrom(token))
	if err != nil {
		t.Fatal(err)
	}
	other, err := r.Migrate(ctx, repo.MigrateSegment(1, 2))
	if err != nil {
		t.Fatal(err)
	}
	if got := first.Scanned + rest.Scanned + other.Scanned; got != n {
		t.Fatalf("segments read %d+%d+%d items, want %d in all", first.Scanned, rest.Scanned, other.Scanned, n)
	}
	if got := first.Changed + rest.Changed + other.Changed; got != 2*n/3 {
		t.Fatalf("segments changed %d items, want %d", got, 2*n/3)
	}
	final := migRepo(t, f, table, enc.Spec{KeyID: f.alias, Version: enc.Version2, RequireSealed: true, MinVersion: enc.Version2})
	migCheckAll(t, final, n, nil)
	for _, seg := range []int{0, 1} {
		again, err := r.Migrate(ctx, repo.MigrateSegment(seg, 2))
		if err != nil || again.Changed != 0 {
			t.Fatalf("second run of segment %d: %+v, %v", seg, again, err)
		}
	}
}
