package fakedynamo_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// putKinds writes items A/1 to A/10 of kind "odd" or "even", and A/11 of
// no kind.
func putKinds(t *testing.T, db *dynamodb.Client) {
	t.Helper()
	for i := 1; i <= 11; i++ {
		it := map[string]av{"pk": s("A"), "sk": n(strconv.Itoa(i))}
		if i <= 10 {
			it["kind"] = s(map[bool]string{true: "even", false: "odd"}[i%2 == 0])
		}
		put(t, db, it)
	}
}

// filteredPage is what a page of a Query holds: its items' range keys,
// Count, ScannedCount and the range key of LastEvaluatedKey (or -).
type filteredPage struct {
	sks            []string
	count, scanned int32
	last           string
}

func (p filteredPage) String() string {
	return fmt.Sprintf("%v %d/%d last %s", p.sks, p.count, p.scanned, p.last)
}

func sortKey(it map[string]av) string {
	if v, ok := it["sk"].(*types.AttributeValueMemberN); ok {
		return v.Value
	}
	return "none"
}

// queryPages pages through a Query of partition A with filter, and
// returns its pages.
func queryPages(t *testing.T, db *dynamodb.Client, filter string, values map[string]av, limit int32) []filteredPage {
	t.Helper()
	values[":a"] = s("A")
	in := &dynamodb.QueryInput{TableName: aws.String("things"), KeyConditionExpression: aws.String("pk = :a"),
		FilterExpression: aws.String(filter), ExpressionAttributeValues: values, ExpressionAttributeNames: namesOf(filter)}
	if limit > 0 {
		in.Limit = aws.Int32(limit)
	}
	var pages []filteredPage
	p := dynamodb.NewQueryPaginator(db, in)
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pg := filteredPage{count: out.Count, scanned: out.ScannedCount, last: "-"}
		for _, it := range out.Items {
			pg.sks = append(pg.sks, sortKey(it))
		}
		if out.LastEvaluatedKey != nil {
			pg.last = sortKey(out.LastEvaluatedKey)
		}
		pages = append(pages, pg)
		if len(pages) > 100 {
			t.Fatalf("more than 100 pages: %v", pages)
		}
	}
	return pages
}

func TestQueryFilterAfterLimit(t *testing.T) {
	f, db := newTable(t)
	putKinds(t, db)
	even := map[string]av{":k": s("even")}
	check := func(name string, got []filteredPage, want string) {
		t.Helper()
		if fmt.Sprint(got) != want {
			t.Errorf("%s:\n got %v\nwant %s", name, got, want)
		}
	}
	// Limit counts the items evaluated, kept or not; LastEvaluatedKey is
	// the last of them.
	check("limit 3", queryPages(t, db, "#kind = :k", even, 3),
		"[[2] 1/3 last 3 [4 6] 2/3 last 6 [8] 1/3 last 9 [10] 1/2 last -]")
	check("no limit", queryPages(t, db, "#kind = :k", even, 0), "[[2 4 6 8 10] 5/11 last -]")
	check("<> keeps items without the attribute", queryPages(t, db, "#kind <> :k", even, 0), "[[1 3 5 7 9 11] 6/11 last -]")
	check("attribute_not_exists", queryPages(t, db, "attribute_not_exists(#kind)", map[string]av{}, 4),
		"[[] 0/4 last 4 [] 0/4 last 8 [11] 1/3 last -]")
	check("AND", queryPages(t, db, "attribute_exists(#kind) AND :k = #kind", map[string]av{":k": s("odd")}, 0),
		"[[1 3 5 7 9] 5/11 last -]")
	check("AND in parentheses, as the expression builder writes it",
		queryPages(t, db, "(attribute_exists(#kind)) AND ((:k = #kind) AND (#kind <> :e))", map[string]av{":k": s("odd"), ":e": s("even")}, 0),
		"[[1 3 5 7 9] 5/11 last -]")
	// The page size counts the items evaluated too.
	f.PageBytes = 1
	check("page bytes", queryPages(t, db, "#kind = :k", even, 0),
		"[[] 0/1 last 1 [2] 1/1 last 2 [] 0/1 last 3 [4] 1/1 last 4 [] 0/1 last 5 [6] 1/1 last 6 [] 0/1 last 7 [8] 1/1 last 8 [] 0/1 last 9 [10] 1/1 last 10 [] 0/1 last -]")
	f.PageBytes = 0

	out, err := db.Query(context.Background(), &dynamodb.QueryInput{TableName: aws.String("things"), KeyConditionExpression: aws.String("pk = :a"),
		FilterExpression: aws.String("#kind = :k"), ExpressionAttributeNames: namesOf("#kind"),
		ExpressionAttributeValues: map[string]av{":a": s("A"), ":k": s("even")}, Select: types.SelectCount, Limit: aws.Int32(5)})
	if err != nil || out.Count != 2 || out.ScannedCount != 5 || len(out.Items) != 0 {
		t.Errorf("COUNT: %+v %v", out, err)
	}
}

// scanFiltered pages through a Scan, checking each page's counts, and
// returns the pages, the items scanned and the ids of those kept.
func scanFiltered(t *testing.T, db *dynamodb.Client, in *dynamodb.ScanInput) (pages, scanned int32, kept []string) {
	t.Helper()
	p := dynamodb.NewScanPaginator(db, in)
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if pages++; out.ScannedCount != aws.ToInt32(in.Limit) && out.LastEvaluatedKey != nil || int(out.Count) != len(out.Items) {
			t.Errorf("page %d: Count %d of %d items, ScannedCount %d", pages, out.Count, len(out.Items), out.ScannedCount)
		}
		scanned += out.ScannedCount
		for _, it := range out.Items {
			kept = append(kept, itemID(it))
		}
	}
	return pages, scanned, kept
}

func TestScanFilter(t *testing.T) {
	_, db := newTable(t)
	fill(t, db, 20, 5)
	pages, scanned, kept := scanFiltered(t, db, &dynamodb.ScanInput{TableName: aws.String("things"), Limit: aws.Int32(7), FilterExpression: aws.String("#sk = :zero"),
		ExpressionAttributeNames: map[string]string{"#sk": "sk"}, ExpressionAttributeValues: map[string]av{":zero": n("0")}})
	// A Scan's filter may read the key. 100 = 14×7 + 2.
	if pages != 15 || scanned != 100 || len(kept) != 20 {
		t.Errorf("%d pages scanned %d items and kept %v", pages, scanned, kept)
	}
	for _, id := range kept {
		if !strings.HasSuffix(id, "/0") {
			t.Errorf("kept %s", id)
		}
	}
}

func TestFilterRefusals(t *testing.T) {
	ctx := context.Background()
	_, db := newTable(t)
	putKinds(t, db)
	for _, filter := range []string{
		"#kind < :k",
		"#kind = :k OR #kind = :k",
		"NOT #kind = :k",
		"(#kind = :k",
		"begins_with(#kind, :k)",
		"contains(#kind, :k)",
		"kind = :k", // names must be placeholders
		"#kind = :k AND #kind IN (:k)",
		"#kind = :undefined",
		"#kind = :k AND #pk = :k", // a key attribute, in a Query
		"#sk <> :k",
	} {
		values := map[string]av{":k": s("even"), ":a": s("A")}
		if filter == "#kind = :undefined" {
			delete(values, ":k")
		}
		_, err := db.Query(ctx, &dynamodb.QueryInput{TableName: aws.String("things"), KeyConditionExpression: aws.String("pk = :a"),
			FilterExpression: aws.String(filter), ExpressionAttributeNames: namesOf(filter), ExpressionAttributeValues: values})
		if apiCode(err) != "ValidationException" {
			t.Errorf("Query filter %q: %v", filter, err)
		}
	}
	_, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String("things"), FilterExpression: aws.String("#kind = :k"),
		ExpressionAttributeNames: namesOf("#kind #sk"), ExpressionAttributeValues: map[string]av{":k": s("even")}})
	if apiCode(err) != "ValidationException" {
		t.Errorf("a Scan with a name unused: %v", err)
	}
}
