package repo_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/repo"
)

// countDB answers Query and Scan with Select COUNT in three pages of 2, 3
// and 4 items, each continuing from the key the last one gave.
type countDB struct {
	repo.API
	t     *testing.T
	calls int
}

func (c *countDB) page(sel types.Select, start map[string]types.AttributeValue) (int32, map[string]types.AttributeValue) {
	if sel != types.SelectCount {
		c.t.Errorf("Select %q, want COUNT", sel)
	}
	want := ""
	if c.calls > 0 {
		want = fmt.Sprint(c.calls)
	}
	if got, _ := start["pk"].(*types.AttributeValueMemberS); (got == nil) != (want == "") || (got != nil && got.Value != want) {
		c.t.Errorf("page %d starts at %v", c.calls, start)
	}
	c.calls++
	if c.calls == 3 {
		return 4, nil
	}
	return int32(c.calls + 1), map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: fmt.Sprint(c.calls)}}
}

func (c *countDB) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	n, last := c.page(in.Select, in.ExclusiveStartKey)
	return &dynamodb.QueryOutput{Count: n, LastEvaluatedKey: last}, nil
}

func (c *countDB) Scan(_ context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	n, last := c.page(in.Select, in.ExclusiveStartKey)
	return &dynamodb.ScanOutput{Count: n, LastEvaluatedKey: last}, nil
}

func TestCountAddsUpEveryPage(t *testing.T) {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	for _, op := range []string{"query", "scan"} {
		db := &countDB{t: t}
		keys := enctest.New()
		r, err := repo.New[trapUser]("users", repo.WithClient(db), repo.WithRegistry(reg), repo.WithEncryptor(enc.New(keys)))
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		if op == "query" {
			n, err = r.QueryCount(ctx, expression.Key("pk").Equal(expression.Value("a")))
		} else {
			n, err = r.ScanCount(ctx)
		}
		if err != nil || n != 9 || db.calls != 3 || keys.Decrypts.Load() != 0 {
			t.Fatalf("%s: %d, %v after %d requests and %d Decrypts; want 9 after 3 and none", op, n, err, db.calls, keys.Decrypts.Load())
		}
	}
}

// Options a count cannot honour, and filters on encrypted values, are
// refused before any request.
func TestCountRefusesBeforeAnyRequest(t *testing.T) {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	db := &countDB{t: t}
	r, err := repo.New[trapUser]("users", repo.WithClient(db), repo.WithRegistry(reg), repo.WithEncryptor(enc.New(enctest.New())))
	if err != nil {
		t.Fatal(err)
	}
	for name, opt := range map[string]repo.ReadOption{
		"limit": repo.Limit(1), "page size": repo.PageSize(1), "projection": repo.Project("pk"),
		"segments": repo.Segments(2), "order": repo.Descending(),
	} {
		if _, err := r.ScanCount(ctx, opt); err == nil {
			t.Errorf("ScanCount took %s", name)
		}
	}
	bySSN := repo.Filter(expression.Name("ssn").Equal(expression.Value("123")))
	if _, err := r.ScanCount(ctx, bySSN); !errors.Is(err, repo.ErrEncryptedComparison) {
		t.Errorf("filter on an encrypted value: %v", err)
	}
	if _, err := r.QueryCount(ctx, expression.KeyConditionBuilder{}); err == nil {
		t.Error("QueryCount without a key condition")
	}
	if db.calls != 0 {
		t.Fatalf("%d requests were sent", db.calls)
	}
}
