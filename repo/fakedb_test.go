package repo_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/repo"
)

// fakeDB answers Query and Scan over one partition of Account items
// ("pk" = "A", numeric "sk"), the way DynamoDB pages: Limit counts items
// evaluated before the filter, LastEvaluatedKey is the key of the last item
// evaluated whenever Limit (or maxPage, standing in for the 1 MB cap)
// stopped the request. The key condition is not evaluated: every query
// reads the whole partition. A filter is applied with match; a projection
// keeps the named attributes. Segment s of n holds the items with sk%n == s.
type fakeDB struct {
	repo.API // other operations are not used and panic

	items   []map[string]types.AttributeValue // in sk order
	match   func(map[string]types.AttributeValue) bool
	maxPage int
	// fail, when set, is consulted before every request.
	fail func(ctx context.Context, segment int) error

	mu      sync.Mutex
	queries []dynamodb.QueryInput
	scans   []dynamodb.ScanInput
}

func (f *fakeDB) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queries) + len(f.scans)
}

func (f *fakeDB) Query(ctx context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	f.mu.Lock()
	f.queries = append(f.queries, *in)
	f.mu.Unlock()
	if f.fail != nil {
		if err := f.fail(ctx, 0); err != nil {
			return nil, err
		}
	}
	items := slices.Clone(f.items)
	if in.ScanIndexForward != nil && !*in.ScanIndexForward {
		slices.Reverse(items)
	}
	got, last := f.read(items, in.ExclusiveStartKey, in.Limit, in.FilterExpression, in.ProjectionExpression, in.ExpressionAttributeNames)
	return &dynamodb.QueryOutput{Items: got, LastEvaluatedKey: last}, nil
}

func (f *fakeDB) Scan(ctx context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	f.mu.Lock()
	f.scans = append(f.scans, *in)
	f.mu.Unlock()
	seg, total := int(aws.ToInt32(in.Segment)), int(aws.ToInt32(in.TotalSegments))
	if f.fail != nil {
		if err := f.fail(ctx, seg); err != nil {
			return nil, err
		}
	}
	var items []map[string]types.AttributeValue
	for _, it := range f.items {
		if total <= 1 || sk(it)%total == seg {
			items = append(items, it)
		}
	}
	got, last := f.read(items, in.ExclusiveStartKey, in.Limit, in.FilterExpression, in.ProjectionExpression, in.ExpressionAttributeNames)
	return &dynamodb.ScanOutput{Items: got, LastEvaluatedKey: last}, nil
}

func (f *fakeDB) read(items []map[string]types.AttributeValue, start map[string]types.AttributeValue, limit *int32, filter, projection *string, names map[string]string) (got []map[string]types.AttributeValue, last map[string]types.AttributeValue) {
	if start != nil {
		i := slices.IndexFunc(items, func(it map[string]types.AttributeValue) bool { return sk(it) == sk(start) })
		if i < 0 {
			panic(fmt.Sprintf("fake: start key %v not found", start))
		}
		items = items[i+1:]
	}
	n := len(items)
	if limit != nil {
		n = min(n, int(*limit))
	}
	if f.maxPage > 0 {
		n = min(n, f.maxPage)
	}
	evaluated := items[:n]
	if n < len(items) || (limit != nil && n == int(*limit)) {
		e := evaluated[n-1]
		last = map[string]types.AttributeValue{"pk": e["pk"], "sk": e["sk"]}
	}
	for _, it := range evaluated {
		if filter != nil && !f.match(it) {
			continue
		}
		got = append(got, project(it, projection, names))
	}
	return got, last
}

func project(it map[string]types.AttributeValue, projection *string, names map[string]string) map[string]types.AttributeValue {
	if projection == nil {
		return it
	}
	out := map[string]types.AttributeValue{}
	for _, ph := range strings.Split(*projection, ", ") {
		if v, ok := it[names[ph]]; ok {
			out[names[ph]] = v
		}
	}
	return out
}

func sk(it map[string]types.AttributeValue) int {
	n, err := strconv.Atoi(it["sk"].(*types.AttributeValueMemberN).Value)
	if err != nil {
		panic(err)
	}
	return n
}

// accountItems makes n stored Account items with sk 0..n-1 whose encrypted
// fields are sealed in groups of group items, each group under one data key
// (as one write call would), so a page's Decrypt count is the number of
// groups it touches.
func accountItems(tb testing.TB, r *repo.Repo[Account], n, group int) []map[string]types.AttributeValue {
	tb.Helper()
	spec := enc.Spec{KeyID: "alias/pii"}
	var items []map[string]types.AttributeValue
	for g := 0; g < n; g += group {
		var reqs []enc.SealRequest
		for i := g; i < min(g+group, n); i++ {
			reqs = append(reqs,
				enc.SealRequest{Spec: spec, Attribute: "ssn", Plaintext: []byte(fmt.Sprintf("ssn-%d", i))},
				enc.SealRequest{Spec: spec, Attribute: "card", Plaintext: []byte(fmt.Sprintf("card-%d", i))})
		}
		stored, err := r.Encryptor().Seal(context.Background(), reqs)
		if err != nil {
			tb.Fatal(err)
		}
		for i := g; i < min(g+group, n); i++ {
			j := 2 * (i - g)
			items = append(items, map[string]types.AttributeValue{
				"pk":   &types.AttributeValueMemberS{Value: "A"},
				"sk":   &types.AttributeValueMemberN{Value: strconv.Itoa(i)},
				"name": &types.AttributeValueMemberS{Value: fmt.Sprintf("n%d", i)},
				"ssn":  &types.AttributeValueMemberS{Value: stored[j]},
				"card": &types.AttributeValueMemberS{Value: stored[j+1]},
			})
		}
	}
	return items
}
