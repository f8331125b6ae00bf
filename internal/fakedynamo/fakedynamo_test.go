package fakedynamo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/dynoseal/dynoseal/internal/fakedynamo"
)

type av = types.AttributeValue

func s(v string) av { return &types.AttributeValueMemberS{Value: v} }
func n(v string) av { return &types.AttributeValueMemberN{Value: v} }

func newTable(t *testing.T) (*fakedynamo.Transport, *dynamodb.Client) {
	t.Helper()
	f := fakedynamo.New()
	db := f.Client()
	_, err := db.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName: aws.String("things"),
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeN},
		},
		BillingMode: types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f, db
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestItemRoundTripsEveryType(t *testing.T) {
	ctx := context.Background()
	_, db := newTable(t)
	item := map[string]av{
		"pk":   s("P\"1\u00e9"),
		"sk":   n("7"),
		"b":    &types.AttributeValueMemberB{Value: []byte{0, 1, 2, 255}},
		"ok":   &types.AttributeValueMemberBOOL{Value: true},
		"nil":  &types.AttributeValueMemberNULL{Value: true},
		"ss":   &types.AttributeValueMemberSS{Value: []string{"a", "b"}},
		"ns":   &types.AttributeValueMemberNS{Value: []string{"1", "2.5"}},
		"bs":   &types.AttributeValueMemberBS{Value: [][]byte{{1}, {2}}},
		"list": &types.AttributeValueMemberL{Value: []av{s("x"), n("-1e3"), &types.AttributeValueMemberM{Value: map[string]av{"k": s("v")}}}},
		"map":  &types.AttributeValueMemberM{Value: map[string]av{"inner": &types.AttributeValueMemberL{Value: []av{}}}},
	}
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("things"), Item: item}); err != nil {
		t.Fatal(err)
	}
	key := map[string]av{"pk": s("P\"1\u00e9"), "sk": n("7.0")} // numbers are keys by value
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("things"), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out.Item, item) {
		t.Fatalf("got %#v\nwant %#v", out.Item, item)
	}
	out, err = db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("things"), Key: key,
		ProjectionExpression: aws.String("#b, ok"), ExpressionAttributeNames: map[string]string{"#b": "b"}})
	if err != nil || len(out.Item) != 2 || out.Item["ok"] == nil || out.Item["b"] == nil {
		t.Fatalf("projection: %v %v", out.Item, err)
	}
	out, err = db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("things"), Key: map[string]av{"pk": s("nope"), "sk": n("1")}})
	if err != nil || out.Item != nil {
		t.Fatalf("missing item: %v %v", out.Item, err)
	}
	del, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String("things"), Key: key, ReturnValues: types.ReturnValueAllOld})
	if err != nil || !reflect.DeepEqual(del.Attributes, item) {
		t.Fatalf("delete: %v %v", del.Attributes, err)
	}
}

func TestQueryPagesInRangeKeyOrder(t *testing.T) {
	ctx := context.Background()
	f, db := newTable(t)
	// 10, 9, ..., 1 in partition A (written out of order), one item in B.
	var reqs []types.WriteRequest
	for i := 10; i >= 1; i-- {
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]av{"pk": s("A"), "sk": n(strconv.Itoa(i)), "pad": s("0123456789")}}})
	}
	reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]av{"pk": s("B"), "sk": n("1")}}})
	if _, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{"things": reqs}}); err != nil {
		t.Fatal(err)
	}
	query := func(cond expression.KeyConditionBuilder, limit int32, forward bool) (pages [][]string) {
		t.Helper()
		e, err := expression.NewBuilder().WithKeyCondition(cond).Build()
		if err != nil {
			t.Fatal(err)
		}
		in := &dynamodb.QueryInput{TableName: aws.String("things"), KeyConditionExpression: e.KeyCondition(),
			ExpressionAttributeNames: e.Names(), ExpressionAttributeValues: e.Values(), ScanIndexForward: aws.Bool(forward)}
		if limit > 0 {
			in.Limit = aws.Int32(limit)
		}
		p := dynamodb.NewQueryPaginator(db, in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var page []string
			for _, it := range out.Items {
				page = append(page, it["sk"].(*types.AttributeValueMemberN).Value)
			}
			pages = append(pages, page)
		}
		return pages
	}
	a := expression.Key("pk").Equal(expression.Value("A"))
	check := func(name string, got [][]string, want string) {
		t.Helper()
		if fmt.Sprint(got) != want {
			t.Errorf("%s: pages %v, want %s", name, got, want)
		}
	}
	check("all", query(a, 0, true), "[[1 2 3 4 5 6 7 8 9 10]]")
	check("limit 4", query(a, 4, true), "[[1 2 3 4] [5 6 7 8] [9 10]]")
	check("limit 5: a page cut by Limit has a next page, maybe empty", query(a, 5, true), "[[1 2 3 4 5] [6 7 8 9 10] []]")
	check("descending", query(a, 4, false), "[[10 9 8 7] [6 5 4 3] [2 1]]")
	check("between", query(a.And(expression.Key("sk").Between(expression.Value(3), expression.Value(5))), 2, true), "[[3 4] [5]]")
	check("greater", query(a.And(expression.Key("sk").GreaterThan(expression.Value(8))), 0, false), "[[10 9]]")
	check("other partition", query(expression.Key("pk").Equal(expression.Value("B")), 0, true), "[[1]]")
	f.PageBytes = 100 // about two items
	check("page bytes", query(a, 0, true), "[[1 2] [3 4] [5 6] [7 8] [9 10]]")
}

func TestBatchGetAndLimits(t *testing.T) {
	ctx := context.Background()
	f, db := newTable(t)
	var reqs []types.WriteRequest
	var keys []map[string]av
	for i := range 26 {
		it := map[string]av{"pk": s("A"), "sk": n(strconv.Itoa(i))}
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: it}})
		keys = append(keys, it)
	}
	_, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{"things": reqs}})
	if apiCode(err) != "ValidationException" {
		t.Fatalf("26 writes: %v", err)
	}
	dup := []types.WriteRequest{reqs[0], reqs[0]}
	if _, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{"things": dup}}); apiCode(err) != "ValidationException" {
		t.Fatalf("duplicate writes: %v", err)
	}
	if _, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{"things": reqs[:25]}}); err != nil {
		t.Fatal(err)
	}
	out, err := db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{"things": {Keys: keys}}})
	if err != nil || len(out.Responses["things"]) != 25 || len(out.UnprocessedKeys) != 0 {
		t.Fatalf("batch get: %d items, %v", len(out.Responses["things"]), err)
	}
	if got := f.Requests("BatchWriteItem"); got != 3 {
		t.Errorf("BatchWriteItem requests: %d", got)
	}
	if f.Busy() <= 0 {
		t.Errorf("busy %v after serving requests", f.Busy())
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	_, db := newTable(t)
	_, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("nothing"), Key: map[string]av{"pk": s("A")}})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("missing table: %v", err)
	}
	for name, item := range map[string]map[string]av{
		"no range key":   {"pk": s("A")},
		"wrong key type": {"pk": s("A"), "sk": s("1")},
		"empty hash key": {"pk": s(""), "sk": n("1")},
	} {
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("things"), Item: item}); apiCode(err) != "ValidationException" {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err = db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("things"), Item: map[string]av{"pk": s("A"), "sk": n("1")},
		ConditionExpression: aws.String("attribute_not_exists(pk)")})
	if apiCode(err) != "ValidationException" {
		t.Errorf("a condition is refused, not ignored: %v", err)
	}
	_, err = db.CreateTable(ctx, &dynamodb.CreateTableInput{TableName: aws.String("things"),
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}}})
	var inUse *types.ResourceInUseException
	if !errors.As(err, &inUse) {
		t.Errorf("existing table: %v", err)
	}
	d, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("things")})
	if err != nil || d.Table.TableStatus != types.TableStatusActive || len(d.Table.KeySchema) != 2 {
		t.Errorf("describe: %+v %v", d, err)
	}
}

// recorder keeps the last request body it passes on.
type recorder struct {
	next http.RoundTripper
	body []byte
	req  *http.Request
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	b, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	r.body, r.req = b, req
	req.Body = io.NopCloser(bytes.NewReader(b))
	return r.next.RoundTrip(req)
}

// BenchmarkServe measures the fake's own work per request, which the
// benchmarks of the client (repo/bench_raw_test.go) count on both sides.
func BenchmarkServe(b *testing.B) {
	ctx := context.Background()
	f := fakedynamo.New()
	if err := f.AddTable("bench", fakedynamo.KeyAttribute{Name: "pk", Type: "S"}, fakedynamo.KeyAttribute{Name: "sk", Type: "N"}); err != nil {
		b.Fatal(err)
	}
	rec := &recorder{next: f}
	db := f.Client(func(o *dynamodb.Options) { o.HTTPClient = &http.Client{Transport: rec} })
	item := func(i int) map[string]av {
		return map[string]av{"pk": s("P"), "sk": n(strconv.Itoa(i)), "email": s(fmt.Sprintf("user%d@example.com", i)),
			"name": s("Jane Q. Example"), "age": n("42"), "balance": n("1.25"), "active": &types.AttributeValueMemberBOOL{Value: true},
			"tags": &types.AttributeValueMemberL{Value: []av{s("gold"), s("eu-west")}}, "ssn": s("ENC:" + strings.Repeat("A", 120))}
	}
	serve := func(b *testing.B, body []byte, req *http.Request) {
		b.ReportAllocs()
		for b.Loop() {
			r := req.Clone(ctx)
			r.Body = io.NopCloser(bytes.NewReader(body))
			resp, err := f.RoundTrip(r)
			if err != nil || resp.StatusCode != 200 {
				b.Fatal(resp.StatusCode, err)
			}
			resp.Body.Close()
		}
	}
	for i := 0; i < 1000; i += 25 {
		var reqs []types.WriteRequest
		for j := i; j < i+25; j++ {
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item(j)}})
		}
		if _, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{"bench": reqs}}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("BatchWriteItem25", func(b *testing.B) { serve(b, rec.body, rec.req) })
	if _, err := db.Query(ctx, &dynamodb.QueryInput{TableName: aws.String("bench"), KeyConditionExpression: aws.String("pk = :p"),
		ExpressionAttributeValues: map[string]av{":p": s("P")}}); err != nil {
		b.Fatal(err)
	}
	b.Run("Query1000", func(b *testing.B) { serve(b, rec.body, rec.req) })
	if _, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("bench"), Key: map[string]av{"pk": s("P"), "sk": n("7")}}); err != nil {
		b.Fatal(err)
	}
	b.Run("GetItem", func(b *testing.B) { serve(b, rec.body, rec.req) })
	if _, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String("bench"), Limit: aws.Int32(100), Segment: aws.Int32(0), TotalSegments: aws.Int32(1)}); err != nil {
		b.Fatal(err)
	}
	b.Run("Scan100", func(b *testing.B) { serve(b, rec.body, rec.req) })
	if _, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String("bench"), Key: map[string]av{"pk": s("P"), "sk": n("7")},
		UpdateExpression: aws.String("SET #t[1] = :t ADD #v :one"), ConditionExpression: aws.String("#n = :n"),
		ExpressionAttributeNames:  map[string]string{"#t": "tags", "#v": "age", "#n": "name"},
		ExpressionAttributeValues: map[string]av{":t": s("us-east"), ":one": n("1"), ":n": s("Jane Q. Example")}}); err != nil {
		b.Fatal(err)
	}
	b.Run("UpdateItem", func(b *testing.B) { serve(b, rec.body, rec.req) })
}
