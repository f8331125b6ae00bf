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

func TestScanPagesWithLimit(t *testing.T) {
	f, db := newTable(t)
	fill(t, db, 50, 5)
	pages := scanAll(t, db, dynamodb.ScanInput{TableName: aws.String("things"), Limit: aws.Int32(7), ConsistentRead: aws.Bool(true)})
	checkOnce(t, pages, 50, 5)
	if len(pages) != 36 { // 250 = 35×7 + 5
		t.Errorf("%d pages of Limit 7 for 250 items", len(pages))
	}
	for i, page := range pages[:35] {
		if len(page) != 7 {
			t.Fatalf("page %d has %d items", i, len(page))
		}
	}
	// A page cut by Limit is unfinished even at the end: 250 = 25×10, then
	// an empty page.
	if pages := scanAll(t, db, dynamodb.ScanInput{TableName: aws.String("things"), Limit: aws.Int32(10)}); len(pages) != 26 || len(pages[25]) != 0 {
		t.Errorf("Limit 10: %d pages, last %v", len(pages), pages[len(pages)-1])
	}
	if got := scanAll(t, db, dynamodb.ScanInput{TableName: aws.String("things")}); len(got) != 1 || len(got[0]) != 250 {
		t.Errorf("a scan without limit: %d pages", len(got))
	}
	f.PageBytes = 200 // a few items
	pages = scanAll(t, db, dynamodb.ScanInput{TableName: aws.String("things")})
	checkOnce(t, pages, 50, 5)
	if len(pages) < 50 {
		t.Errorf("page bytes: only %d pages", len(pages))
	}
	if got := f.Requests("Scan"); got != 36+26+1+len(pages) {
		t.Errorf("Scan requests: %d", got)
	}
}

func TestScanSegments(t *testing.T) {
	_, db := newTable(t)
	fill(t, db, 40, 3)
	const total = 4
	var all [][]string
	for seg := range total {
		in := dynamodb.ScanInput{TableName: aws.String("things"), Limit: aws.Int32(4), Segment: aws.Int32(int32(seg)), TotalSegments: aws.Int32(total)}
		pages := scanAll(t, db, in)
		n := 0
		for _, p := range pages {
			n += len(p)
		}
		if n == 0 || n == 120 {
			t.Errorf("segment %d holds %d of 120 items", seg, n)
		}
		// The same split for every request.
		if again := scanAll(t, db, in); fmt.Sprint(again) != fmt.Sprint(pages) {
			t.Errorf("segment %d scanned differently the second time", seg)
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

func TestScanResumesAfterDeletedKeyOnHashOnlyTable(t *testing.T) {
	ctx := context.Background()
	f := fakedynamo.New()
	if err := f.AddTable("flat", fakedynamo.KeyAttribute{Name: "id", Type: "N"}); err != nil {
		t.Fatal(err)
	}
	db := f.Client()
	for i := range 30 {
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("flat"), Item: map[string]av{"id": n(strconv.Itoa(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	var start map[string]av
	for {
		out, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String("flat"), Limit: aws.Int32(4), ExclusiveStartKey: start})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range out.Items {
			id := it["id"].(*types.AttributeValueMemberN).Value
			if seen[id] {
				t.Fatalf("%s scanned twice", id)
			}
			seen[id] = true
		}
		if start = out.LastEvaluatedKey; start == nil {
			break
		}
		// The item of the start key goes before the next page.
		if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String("flat"), Key: start}); err != nil {
			t.Fatal(err)
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
		"filter": {FilterExpression: aws.String("#a = :a"), ExpressionAttributeNames: map[string]string{"#a": "a"},
			ExpressionAttributeValues: map[string]av{":a": s("x")}},
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
