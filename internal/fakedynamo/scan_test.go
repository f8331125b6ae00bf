package fakedynamo_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/internal/fakedynamo"
)

// fill writes parts partitions of per items each, pk "P<i>" and sk 0..per-1.
func fill(t *testing.T, db *dynamodb.Client, parts, per int) {
	t.Helper()
	var reqs []types.WriteRequest
	flush := func() {
		if len(reqs) == 0 {
			return
		}
		if _, err := db.BatchWriteItem(context.Background(), &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{"things": reqs}}); err != nil {
			t.Fatal(err)
		}
		reqs = nil
	}
	for p := range parts {
		for i := range per {
			it := map[string]av{"pk": s("P" + strconv.Itoa(p)), "sk": n(strconv.Itoa(i)), "pad": s("0123456789")}
			if reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: it}}); len(reqs) == 25 {
				flush()
			}
		}
	}
	flush()
}

func itemID(it map[string]av) string {
	return it["pk"].(*types.AttributeValueMemberS).Value + "/" + it["sk"].(*types.AttributeValueMemberN).Value
}

// scanAll pages through a scan, checking each page's counts, and returns
// its items' ids page by page.
func scanAll(t *testing.T, db *dynamodb.Client, in dynamodb.ScanInput) [][]string {
	t.Helper()
	var pages [][]string
	p := dynamodb.NewScanPaginator(db, &in)
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if int(out.Count) != len(out.Items) || out.ScannedCount != out.Count {
			t.Fatalf("page of %d items: Count %d, ScannedCount %d", len(out.Items), out.Count, out.ScannedCount)
		}
		var page []string
		for _, it := range out.Items {
			page = append(page, itemID(it))
		}
		pages = append(pages, page)
	}
	return pages
}

// checkOnce fails unless pages hold every item of fill(parts, per) once,
// each partition's items in range-key order.
func checkOnce(t *testing.T, pages [][]string, parts, per int) {
	t.Helper()
	seen := map[string]bool{}
	next := map[string]int{}
	for _, page := range pages {
		for _, id := range page {
			if seen[id] {
				t.Fatalf("%s scanned twice", id)
			}
			seen[id] = true
			pk, skText, _ := strings.Cut(id, "/")
			sk, _ := strconv.Atoi(skText)
			if sk != next[pk] {
				t.Fatalf("%s scanned out of range-key order", id)
			}
			next[pk]++
		}
	}
	if len(seen) != parts*per {
		t.Fatalf("scanned %d items, want %d", len(seen), parts*per)
	}
}

// pageSizes is the number of items of each page.
func pageSizes(pages [][]string) []int {
	out := make([]int, len(pages))
	for i, p := range pages {
		out[i] = len(p)
	}
	return out
}

func TestScanPagesWithLimit(t *testing.T) {
	f, db := newTable(t)
	fill(t, db, 50, 5)
	pages := scanAll(t, db, dynamodb.ScanInput{TableName: aws.String("things"), Limit: aws.Int32(7), ConsistentRead: aws.Bool(true)})
	checkOnce(t, pages, 50, 5)
	if got := fmt.Sprint(pageSizes(pages)); got != "[7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 5]" { // 250 = 35×7 + 5
		t.Errorf("pages of Limit 7 for 250 items: %s", got)
	}
	// A page cut by Limit is unfinished even at the end: 250 = 25×10, then
	// an empty page.
	if got := pageSizes(scanAll(t, db, dynamodb.ScanInput{TableName: aws.String("things"), Limit: aws.Int32(10)})); len(got) != 26 || got[25] != 0 {
		t.Errorf("pages of Limit 10: %v", got)
	}
	if got := pageSizes(scanAll(t, db, dynamodb.ScanInput{TableName: aws.String("things")})); fmt.Sprint(got) != "[250]" {
		t.Errorf("a scan without limit: %v", got)
	}
	if got := f.Requests("Scan"); got != 36+26+1 {
		t.Errorf("Scan requests: %d", got)
	}
}

func TestScanStopsAtPageBytes(t *testing.T) {
	f, db := newTable(t)
	fill(t, db, 50, 5)
	f.PageBytes = 200 // a few items
	pages := scanAll(t, db, dynamodb.ScanInput{TableName: aws.String("things")})
	checkOnce(t, pages, 50, 5)
	if len(pages) < 50 {
		t.Errorf("only %d pages", len(pages))
	}
}

// scanSegment scans a segment twice, checking that the split is the same
// for every request, and returns its pages.
func scanSegment(t *testing.T, db *dynamodb.Client, seg, total int32) [][]string {
	t.Helper()
	in := dynamodb.ScanInput{TableName: aws.String("things"), Limit: aws.Int32(4), Segment: aws.Int32(seg), TotalSegments: aws.Int32(total)}
	pages := scanAll(t, db, in)
	if again := scanAll(t, db, in); fmt.Sprint(again) != fmt.Sprint(pages) {
		t.Errorf("segment %d scanned differently the second time", seg)
	}
	return pages
}

func TestScanSegments(t *testing.T) {
	_, db := newTable(t)
	fill(t, db, 40, 3)
	const total = 4
	var all [][]string
	for seg := range int32(total) {
		pages := scanSegment(t, db, seg, total)
		if n := len(slices.Concat(pages...)); n == 0 || n == 120 {
			t.Errorf("segment %d holds %d of 120 items", seg, n)
		}
		all = append(all, pages...)
	}
	checkOnce(t, all, 40, 3)

	// A start key belongs to its segment.
	out, err := db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String("things"), Limit: aws.Int32(1), Segment: aws.Int32(0), TotalSegments: aws.Int32(total)})
	if err != nil || out.LastEvaluatedKey == nil {
		t.Fatal(out, err)
	}
	_, err = db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String("things"), Segment: aws.Int32(1), TotalSegments: aws.Int32(total), ExclusiveStartKey: out.LastEvaluatedKey})
	if apiCode(err) != "ValidationException" {
		t.Errorf("a start key of another segment: %v", err)
	}
}

// scanDeleting scans table flat by pages of 4, deleting the item of each
// page's LastEvaluatedKey before asking for the next, and returns how many
// times each id was scanned.
func scanDeleting(t *testing.T, db *dynamodb.Client) map[string]int {
	t.Helper()
	ctx := context.Background()
	seen := map[string]int{}
	var start map[string]av
	for {
		out, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String("flat"), Limit: aws.Int32(4), ExclusiveStartKey: start})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range out.Items {
			seen[it["id"].(*types.AttributeValueMemberN).Value]++
		}
		if start = out.LastEvaluatedKey; start == nil {
			return seen
		}
		if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String("flat"), Key: start}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestScanResumesAfterDeletedKeyOnHashOnlyTable(t *testing.T) {
	f := fakedynamo.New()
	if err := f.AddTable("flat", fakedynamo.KeyAttribute{Name: "id", Type: "N"}); err != nil {
		t.Fatal(err)
	}
	db := f.Client()
	for i := range 30 {
		if _, err := db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String("flat"), Item: map[string]av{"id": n(strconv.Itoa(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	seen := scanDeleting(t, db)
	for id, times := range seen {
		if times != 1 {
			t.Errorf("%s scanned %d times", id, times)
		}
	}
	if len(seen) != 30 {
		t.Errorf("scanned %d of 30 items", len(seen))
	}
}

func TestScanRefusesWhatItDoesNotImplement(t *testing.T) {
	ctx := context.Background()
	_, db := newTable(t)
	for name, in := range map[string]*dynamodb.ScanInput{
		"filter of <": {FilterExpression: aws.String("#a < :a"), ExpressionAttributeNames: map[string]string{"#a": "a"},
			ExpressionAttributeValues: map[string]av{":a": s("x")}},
		"filter of OR": {FilterExpression: aws.String("#a = :a OR #a = :a"), ExpressionAttributeNames: map[string]string{"#a": "a"},
			ExpressionAttributeValues: map[string]av{":a": s("x")}},
		"value unused":            {ExpressionAttributeValues: map[string]av{":a": s("x")}},
		"projection":              {ProjectionExpression: aws.String("pk")},
		"index":                   {IndexName: aws.String("byA")},
		"select":                  {Select: types.SelectCount},
		"segment without total":   {Segment: aws.Int32(0)},
		"total without segment":   {TotalSegments: aws.Int32(2)},
		"segment beyond total":    {Segment: aws.Int32(2), TotalSegments: aws.Int32(2)},
		"limit 0":                 {Limit: aws.Int32(0)},
		"consumed capacity":       {ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal},
		"start key not a key":     {ExclusiveStartKey: map[string]av{"pk": s("A")}},
		"start key of wrong type": {ExclusiveStartKey: map[string]av{"pk": s("A"), "sk": s("1")}},
	} {
		in.TableName = aws.String("things")
		if _, err := db.Scan(ctx, in); apiCode(err) != "ValidationException" {
			t.Errorf("%s: %v", name, err)
		}
	}
}
