package integration

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"

	"github.com/dynoseal/dynoseal/repo"
)

// QueryCount and ScanCount count without reading items: no KMS call.
func TestCountMakesNoKMSCall(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r := batchRepo(t, f)
	items := newBatchCustomers(30)
	for i := range items[20:] {
		items[20+i].Tenant = "globex"
	}
	if err := r.BatchPut(ctx, items); err != nil {
		t.Fatal(err)
	}
	before := r.Encryptor().Stats()
	acme := expression.Key("tenant").Equal(expression.Value("acme"))
	if n, err := r.QueryCount(ctx, acme); err != nil || n != 20 {
		t.Fatalf("QueryCount = %d, %v; want 20", n, err)
	}
	// "customer 1" and "customer 10".."customer 19": 11 items, all of acme.
	ones := repo.Filter(expression.Contains(expression.Name("name"), "customer 1"))
	if n, err := r.QueryCount(ctx, acme, ones, repo.ConsistentRead()); err != nil || n != 11 {
		t.Fatalf("QueryCount with a filter = %d, %v; want 11", n, err)
	}
	if n, err := r.ScanCount(ctx); err != nil || n != 30 {
		t.Fatalf("ScanCount = %d, %v; want 30", n, err)
	}
	if n, err := r.ScanCount(ctx, ones); err != nil || n != 11 {
		t.Fatalf("ScanCount with a filter = %d, %v; want 11", n, err)
	}
	if after := r.Encryptor().Stats(); after.DecryptCalls != before.DecryptCalls || after.GenerateDataKeyCalls != before.GenerateDataKeyCalls {
		t.Fatalf("counting made KMS calls: %+v then %+v", before, after)
	}
	// A filter may not compare an encrypted value, for a count as for a read.
	byCard := repo.Filter(expression.Name("card").Equal(expression.Value("4111")))
	if _, err := r.ScanCount(ctx, byCard); !errors.Is(err, repo.ErrEncryptedComparison) {
		t.Fatalf("count filtered on an encrypted value: %v", err)
	}
	if _, err := r.ScanCount(ctx, repo.Limit(3)); err == nil {
		t.Fatal("ScanCount took a limit it does nothing with")
	}
}
