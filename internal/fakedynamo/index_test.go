package fakedynamo_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/internal/fakedynamo"
)

func keyElems(hash, rng string) []types.KeySchemaElement {
	ks := []types.KeySchemaElement{{AttributeName: aws.String(hash), KeyType: types.KeyTypeHash}}
	if rng != "" {
		ks = append(ks, types.KeySchemaElement{AttributeName: aws.String(rng), KeyType: types.KeyTypeRange})
	}
	return ks
}

func attrDefs(kv ...string) []types.AttributeDefinition {
	var defs []types.AttributeDefinition
	for i := 0; i < len(kv); i += 2 {
		defs = append(defs, types.AttributeDefinition{AttributeName: aws.String(kv[i]), AttributeType: types.ScalarAttributeType(kv[i+1])})
	}
	return defs
}

// indexedTable creates table "things" (pk S, sk N) with four indexes:
// byGroup (grp S, score N; INCLUDE name), byGroupAll (the same keys; ALL),
// byEmail (email S; KEYS_ONLY) and bySk (sk, the table's range key; ALL).
func indexedTable(t *testing.T) (*fakedynamo.Transport, *dynamodb.Client) {
	t.Helper()
	f := fakedynamo.New()
	db := f.Client()
	_, err := db.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName:            aws.String("things"),
		KeySchema:            keyElems("pk", "sk"),
		AttributeDefinitions: attrDefs("pk", "S", "sk", "N", "grp", "S", "score", "N", "email", "S"),
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{
			{IndexName: aws.String("byGroup"), KeySchema: keyElems("grp", "score"),
				Projection: &types.Projection{ProjectionType: types.ProjectionTypeInclude, NonKeyAttributes: []string{"name"}}},
			{IndexName: aws.String("byGroupAll"), KeySchema: keyElems("grp", "score"), Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll}},
			{IndexName: aws.String("byEmail"), KeySchema: keyElems("email", ""), Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly}},
			{IndexName: aws.String("bySk"), KeySchema: keyElems("sk", ""), Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll}},
		},
		BillingMode: types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f, db
}

// member is an item of group grp (if not empty) with score.
func member(pk string, sk int, grp, score string) map[string]av {
	it := map[string]av{"pk": s(pk), "sk": n(strconv.Itoa(sk)), "name": s("name of " + pk), "other": s("x")}
	if grp != "" {
		it["grp"] = s(grp)
	}
	if score != "" {
		it["score"] = n(score)
	}
	return it
}

// queryIndex pages through a query of index, and returns its items' ids,
// page by page.
func queryIndex(t *testing.T, db *dynamodb.Client, in dynamodb.QueryInput) [][]string {
	t.Helper()
	in.TableName = aws.String("things")
	var pages [][]string
	p := dynamodb.NewQueryPaginator(db, &in)
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var page []string
		for _, it := range out.Items {
			page = append(page, itemID(it))
		}
		pages = append(pages, page)
		if len(pages) > 100 {
			t.Fatalf("more than 100 pages: %v", pages)
		}
	}
	return pages
}

func groupQuery(index, grp string, limit int32, forward bool) dynamodb.QueryInput {
	in := dynamodb.QueryInput{IndexName: aws.String(index), KeyConditionExpression: aws.String("grp = :g"),
		ExpressionAttributeValues: map[string]av{":g": s(grp)}, ScanIndexForward: aws.Bool(forward)}
	if limit > 0 {
		in.Limit = aws.Int32(limit)
	}
	return in
}

func TestIndexQueryOrderAndPages(t *testing.T) {
	_, db := indexedTable(t)
	for _, it := range []map[string]av{
		member("A", 1, "g", "3"), member("A", 2, "g", "1"), member("B", 1, "g", "2.0"),
		member("C", 5, "g", "2"), member("B", 2, "g", "2"), // ties on score, ordered by the table's key
		member("D", 1, "h", "1"), // another group
		member("E", 1, "g", ""),  // no range key: not in the index
		member("F", 1, "", "1"),  // no hash key: not in the index
	} {
		put(t, db, it)
	}
	check := func(name string, got [][]string, want string) {
		t.Helper()
		if fmt.Sprint(got) != want {
			t.Errorf("%s: pages %v, want %s", name, got, want)
		}
	}
	check("all", queryIndex(t, db, groupQuery("byGroup", "g", 0, true)), "[[A/2 B/1 B/2 C/5 A/1]]")
	check("limit 2", queryIndex(t, db, groupQuery("byGroup", "g", 2, true)), "[[A/2 B/1] [B/2 C/5] [A/1]]")
	check("descending", queryIndex(t, db, groupQuery("byGroupAll", "g", 2, false)), "[[A/1 C/5] [B/2 B/1] [A/2]]")
	check("a page cut by Limit has a next page", queryIndex(t, db, groupQuery("byGroup", "g", 5, true)), "[[A/2 B/1 B/2 C/5 A/1] []]")
	check("other group", queryIndex(t, db, groupQuery("byGroup", "h", 0, true)), "[[D/1]]")
	check("no group", queryIndex(t, db, groupQuery("byGroup", "none", 0, true)), "[[]]")
	rng := groupQuery("byGroup", "g", 1, true)
	rng.KeyConditionExpression = aws.String("grp = :g AND score BETWEEN :lo AND :hi")
	rng.ExpressionAttributeValues[":lo"], rng.ExpressionAttributeValues[":hi"] = n("2"), n("3")
	check("range condition", queryIndex(t, db, rng), "[[B/1] [B/2] [C/5] [A/1] []]")
	bySk := dynamodb.QueryInput{IndexName: aws.String("bySk"), KeyConditionExpression: aws.String("sk = :s"),
		ExpressionAttributeValues: map[string]av{":s": n("1")}, Limit: aws.Int32(2)}
	check("hash-only index on the table's range key", queryIndex(t, db, bySk), "[[A/1 B/1] [D/1 E/1] [F/1]]")
}

func TestIndexQueryPagesAtPageBytes(t *testing.T) {
	f, db := indexedTable(t)
	for i := range 20 {
		it := member("P"+strconv.Itoa(i), 1, "g", strconv.Itoa(i%7))
		it["other"] = s(strings.Repeat("x", 1000)) // not projected into byGroup
		put(t, db, it)
	}
	f.PageBytes = 1000
	// Pages count the bytes of the items as the index projects them.
	if pages := queryIndex(t, db, groupQuery("byGroup", "g", 0, true)); len(pages) < 2 || len(pages) > 4 {
		t.Errorf("byGroup: %d pages", len(pages))
	}
	if pages := queryIndex(t, db, groupQuery("byGroupAll", "g", 0, true)); len(pages) != 20 {
		t.Errorf("byGroupAll: %d pages", len(pages))
	}
}

// queryOne sends a Query of table things and returns its one item.
func queryOne(t *testing.T, db *dynamodb.Client, in dynamodb.QueryInput) map[string]av {
	t.Helper()
	in.TableName = aws.String("things")
	out, err := db.Query(context.Background(), &in)
	if err != nil || len(out.Items) != 1 {
		t.Fatalf("%s: %v %v", aws.ToString(in.IndexName), out, err)
	}
	return out.Items[0]
}

// indexedItem writes, and returns, an item that is in every index.
func indexedItem(t *testing.T, db *dynamodb.Client) map[string]av {
	t.Helper()
	it := member("A", 1, "g", "1")
	it["email"] = s("a@example.com")
	put(t, db, it)
	return it
}

func TestIndexProjectsAttributes(t *testing.T) {
	_, db := indexedTable(t)
	it := indexedItem(t, db)
	keys := map[string]av{"pk": s("A"), "sk": n("1"), "grp": s("g"), "score": n("1")}
	include := map[string]av{"name": s("name of A")}
	for k, v := range keys {
		include[k] = v
	}
	for name, c := range map[string]struct {
		in   dynamodb.QueryInput
		want map[string]av
	}{
		"INCLUDE": {groupQuery("byGroup", "g", 0, true), include},
		"ALL":     {groupQuery("byGroupAll", "g", 0, true), it},
		"KEYS_ONLY": {dynamodb.QueryInput{IndexName: aws.String("byEmail"), KeyConditionExpression: aws.String("email = :e"),
			ExpressionAttributeValues: map[string]av{":e": s("a@example.com")}, Select: types.SelectAllProjectedAttributes},
			map[string]av{"pk": s("A"), "sk": n("1"), "email": s("a@example.com")}},
		"a projection of projected attributes": {dynamodb.QueryInput{IndexName: aws.String("byGroup"), KeyConditionExpression: aws.String("grp = :g"),
			ExpressionAttributeValues: map[string]av{":g": s("g")}, ProjectionExpression: aws.String("#n, pk"), ExpressionAttributeNames: map[string]string{"#n": "name"}},
			map[string]av{"pk": s("A"), "name": s("name of A")}},
	} {
		if got := queryOne(t, db, c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
}

func TestIndexLastEvaluatedKeyAndCount(t *testing.T) {
	_, db := indexedTable(t)
	indexedItem(t, db)
	lek := map[string]av{"pk": s("A"), "sk": n("1"), "grp": s("g"), "score": n("1")}
	for _, index := range []string{"byGroup", "byGroupAll"} {
		in := groupQuery(index, "g", 1, true)
		in.TableName = aws.String("things")
		out, err := db.Query(context.Background(), &in)
		if err != nil || !reflect.DeepEqual(out.LastEvaluatedKey, lek) {
			t.Errorf("%s: LastEvaluatedKey %v %v", index, out.LastEvaluatedKey, err)
		}
	}
	in := groupQuery("byGroupAll", "g", 0, true)
	in.TableName, in.Select = aws.String("things"), types.SelectCount
	if out, err := db.Query(context.Background(), &in); err != nil || out.Count != 1 || len(out.Items) != 0 {
		t.Errorf("COUNT: %v %v", out, err)
	}
}

func batchWrite(t *testing.T, db *dynamodb.Client, reqs ...types.WriteRequest) {
	t.Helper()
	if _, err := db.BatchWriteItem(context.Background(), &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{"things": reqs}}); err != nil {
		t.Fatal(err)
	}
}

// TestIndexFollowsWrites checks that every kind of write keeps the
// indexes in step with the table.
func TestIndexFollowsWrites(t *testing.T) {
	ctx := context.Background()
	f, db := indexedTable(t)
	var reqs []types.WriteRequest
	for i := range 6 {
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: member("P"+strconv.Itoa(i), 1, "g", strconv.Itoa(10-i))}})
	}
	batchWrite(t, db, reqs...)
	put(t, db, member("P0", 1, "h", "1")) // moves to group h
	put(t, db, member("P1", 1, "g", "0")) // moves to the front
	if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String("things"), Key: map[string]av{"pk": s("P2"), "sk": n("1")}}); err != nil {
		t.Fatal(err)
	}
	batchWrite(t, db, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: map[string]av{"pk": s("P3"), "sk": n("1")}}})
	_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String("things"), Key: map[string]av{"pk": s("P4"), "sk": n("1")},
		UpdateExpression: aws.String("ADD #s :n"), ExpressionAttributeNames: map[string]string{"#s": "score"}, ExpressionAttributeValues: map[string]av{":n": n("100")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(queryIndex(t, db, groupQuery("byGroupAll", "g", 0, true))); got != "[[P1/1 P5/1 P4/1]]" {
		t.Errorf("group g after the writes: %s", got)
	}
	if got := fmt.Sprint(queryIndex(t, db, groupQuery("byGroup", "h", 0, true))); got != "[[P0/1]]" {
		t.Errorf("group h after the writes: %s", got)
	}
	checkIndexCounts(t, db, map[string]int64{"byGroup": 4, "byGroupAll": 4, "byEmail": 0, "bySk": 4})
	if got := f.Requests("Query"); got != 2 {
		t.Errorf("Query requests: %d", got)
	}
}

// checkIndexCounts checks the item count DescribeTable shows of each
// index of things, and that the size is 0 for none only.
func checkIndexCounts(t *testing.T, db *dynamodb.Client, want map[string]int64) {
	t.Helper()
	d, err := db.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String("things")})
	if err != nil {
		t.Fatal(err)
	}
	for _, ix := range d.Table.GlobalSecondaryIndexes {
		count, size := aws.ToInt64(ix.ItemCount), aws.ToInt64(ix.IndexSizeBytes)
		if want := want[aws.ToString(ix.IndexName)]; count != want || (count > 0) != (size > 0) {
			t.Errorf("%s: %d items of %d bytes, want %d items", aws.ToString(ix.IndexName), count, size, want)
		}
	}
}

// flatTable creates table flat, of hash key id (N) alone, with index
// byGroup (grp S, score N; KEYS_ONLY), and writes items 0 to 29 of group g
// with scores id mod 4.
func flatTable(t *testing.T) *dynamodb.Client {
	t.Helper()
	ctx := context.Background()
	db := fakedynamo.New().Client()
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{TableName: aws.String("flat"), KeySchema: keyElems("id", ""),
		AttributeDefinitions: attrDefs("id", "N", "grp", "S", "score", "N"),
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{IndexName: aws.String("byGroup"), KeySchema: keyElems("grp", "score"),
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly}}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		it := map[string]av{"id": n(strconv.Itoa(i)), "grp": s("g"), "score": n(strconv.Itoa(i % 4))}
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("flat"), Item: it}); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// queryDeleting queries group g of flat's index by pages of 4, in
// descending order, deleting the item of each page's LastEvaluatedKey
// before asking for the next, and returns the items' score/id.
func queryDeleting(t *testing.T, db *dynamodb.Client) []string {
	t.Helper()
	ctx := context.Background()
	var got []string
	in := &dynamodb.QueryInput{TableName: aws.String("flat"), IndexName: aws.String("byGroup"), KeyConditionExpression: aws.String("grp = :g"),
		ExpressionAttributeValues: map[string]av{":g": s("g")}, Limit: aws.Int32(4), ScanIndexForward: aws.Bool(false)}
	for range 100 {
		out, err := db.Query(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range out.Items {
			got = append(got, it["score"].(*types.AttributeValueMemberN).Value+"/"+it["id"].(*types.AttributeValueMemberN).Value)
		}
		if in.ExclusiveStartKey = out.LastEvaluatedKey; in.ExclusiveStartKey == nil {
			return got
		}
		key := map[string]av{"id": out.LastEvaluatedKey["id"]}
		if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String("flat"), Key: key}); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("more than 100 pages")
	return nil
}

func TestIndexQueryResumesAfterDeletedItem(t *testing.T) {
	got := queryDeleting(t, flatTable(t))
	// Descending: by score, then by id, each once.
	var want []string
	for score := 3; score >= 0; score-- {
		for id := 29 - (29-score)%4; id >= 0; id -= 4 {
			want = append(want, strconv.Itoa(score)+"/"+strconv.Itoa(id))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

func TestDescribeTableShowsIndexes(t *testing.T) {
	_, db := indexedTable(t)
	d, err := db.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String("things")})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Table.AttributeDefinitions) != 5 || len(d.Table.GlobalSecondaryIndexes) != 4 {
		t.Fatalf("definitions %v, indexes %v", d.Table.AttributeDefinitions, d.Table.GlobalSecondaryIndexes)
	}
	ix := d.Table.GlobalSecondaryIndexes[0]
	for what, ok := range map[string]bool{
		"name":       aws.ToString(ix.IndexName) == "byGroup",
		"status":     ix.IndexStatus == types.IndexStatusActive,
		"key schema": reflect.DeepEqual(ix.KeySchema, keyElems("grp", "score")),
		"projection": ix.Projection.ProjectionType == types.ProjectionTypeInclude && reflect.DeepEqual(ix.Projection.NonKeyAttributes, []string{"name"}),
		"arn":        aws.ToString(ix.IndexArn) == aws.ToString(d.Table.TableArn)+"/index/byGroup",
		"ALL":        d.Table.GlobalSecondaryIndexes[1].Projection.ProjectionType == types.ProjectionTypeAll,
		"no NonKey":  d.Table.GlobalSecondaryIndexes[1].Projection.NonKeyAttributes == nil,
	} {
		if !ok {
			t.Errorf("%s: %+v", what, d.Table.GlobalSecondaryIndexes)
		}
	}
}

func TestIndexKeyTypesAreChecked(t *testing.T) {
	ctx := context.Background()
	_, db := indexedTable(t)
	put(t, db, member("A", 1, "g", "1"))
	for name, it := range map[string]map[string]av{
		"hash key of another type":  {"pk": s("B"), "sk": n("1"), "grp": n("1")},
		"range key of another type": {"pk": s("B"), "sk": n("1"), "score": s("1")}, // even with no hash key
		"a map":                     {"pk": s("B"), "sk": n("1"), "email": m(map[string]av{"a": s("b")})},
		"empty string":              {"pk": s("B"), "sk": n("1"), "email": s("")},
		"not a number":              {"pk": s("B"), "sk": n("1"), "grp": s("g"), "score": n("x")},
	} {
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("things"), Item: it}); apiCode(err) != "ValidationException" {
			t.Errorf("PutItem %s: %v", name, err)
		}
		reqs := []types.WriteRequest{{PutRequest: &types.PutRequest{Item: member("C", 1, "g", "1")}}, {PutRequest: &types.PutRequest{Item: it}}}
		if _, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{"things": reqs}}); apiCode(err) != "ValidationException" {
			t.Errorf("BatchWriteItem %s: %v", name, err)
		}
	}
	_, err := update(db, "SET #score = :v", "", map[string]av{":v": s("high")}, namesOf("#score"))
	if apiCode(err) != "ValidationException" {
		t.Errorf("UpdateItem to a string score: %v", err)
	}
	if got := fmt.Sprint(queryIndex(t, db, groupQuery("byGroup", "g", 0, true))); got != "[[A/1]]" {
		t.Errorf("refused writes changed the index: %s", got)
	}
}

func TestIndexQueryRefusals(t *testing.T) {
	ctx := context.Background()
	_, db := indexedTable(t)
	put(t, db, member("A", 1, "g", "1"))
	g := map[string]av{":g": s("g")}
	for name, in := range map[string]dynamodb.QueryInput{
		"unknown index":      {IndexName: aws.String("nope"), KeyConditionExpression: aws.String("grp = :g"), ExpressionAttributeValues: g},
		"consistent read":    {IndexName: aws.String("byGroupAll"), KeyConditionExpression: aws.String("grp = :g"), ExpressionAttributeValues: g, ConsistentRead: aws.Bool(true)},
		"table's key":        {IndexName: aws.String("byGroup"), KeyConditionExpression: aws.String("pk = :g"), ExpressionAttributeValues: g},
		"range key only":     {IndexName: aws.String("byGroup"), KeyConditionExpression: aws.String("score = :g"), ExpressionAttributeValues: map[string]av{":g": n("1")}},
		"range key type":     {IndexName: aws.String("byGroup"), KeyConditionExpression: aws.String("grp = :g AND score > :s"), ExpressionAttributeValues: map[string]av{":g": s("g"), ":s": s("1")}},
		"ALL_ATTRIBUTES":     {IndexName: aws.String("byGroup"), KeyConditionExpression: aws.String("grp = :g"), ExpressionAttributeValues: g, Select: types.SelectAllAttributes},
		"not projected":      {IndexName: aws.String("byGroup"), KeyConditionExpression: aws.String("grp = :g"), ExpressionAttributeValues: g, ProjectionExpression: aws.String("other")},
		"filter on its key":  {IndexName: aws.String("byGroupAll"), KeyConditionExpression: aws.String("grp = :g"), ExpressionAttributeValues: map[string]av{":g": s("g"), ":s": n("1")}, FilterExpression: aws.String("#s = :s"), ExpressionAttributeNames: map[string]string{"#s": "score"}},
		"filter unprojected": {IndexName: aws.String("byGroup"), KeyConditionExpression: aws.String("grp = :g"), ExpressionAttributeValues: g, FilterExpression: aws.String("attribute_exists(#o)"), ExpressionAttributeNames: map[string]string{"#o": "other"}},
		"start key short":    {IndexName: aws.String("byGroup"), KeyConditionExpression: aws.String("grp = :g"), ExpressionAttributeValues: g, ExclusiveStartKey: map[string]av{"pk": s("A"), "sk": n("1")}},
		"start key of another group": {IndexName: aws.String("byGroup"), KeyConditionExpression: aws.String("grp = :g"), ExpressionAttributeValues: g,
			ExclusiveStartKey: map[string]av{"pk": s("A"), "sk": n("1"), "grp": s("h"), "score": n("1")}},
		"start key of wrong type": {IndexName: aws.String("byGroup"), KeyConditionExpression: aws.String("grp = :g"), ExpressionAttributeValues: g,
			ExclusiveStartKey: map[string]av{"pk": s("A"), "sk": n("1"), "grp": s("g"), "score": s("1")}},
		"ALL_PROJECTED_ATTRIBUTES of the table": {KeyConditionExpression: aws.String("pk = :g"), ExpressionAttributeValues: g, Select: types.SelectAllProjectedAttributes},
	} {
		in.TableName = aws.String("things")
		if _, err := db.Query(ctx, &in); apiCode(err) != "ValidationException" {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A filter may read the table's key, which is not the index's.
	in := groupQuery("byGroup", "g", 0, true)
	in.FilterExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues[":a"] = aws.String("#pk = :a"), map[string]string{"#pk": "pk"}, s("A")
	if got := fmt.Sprint(queryIndex(t, db, in)); got != "[[A/1]]" {
		t.Errorf("a filter on the table's key: %s", got)
	}
	if _, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String("things"), IndexName: aws.String("byGroup")}); apiCode(err) != "ValidationException" {
		t.Errorf("a Scan of an index: %v", err)
	}
}

func TestCreateTableRefusesBadIndexes(t *testing.T) {
	ctx := context.Background()
	db := fakedynamo.New().Client()
	all := &types.Projection{ProjectionType: types.ProjectionTypeAll}
	gsi := func(name, hash string, p *types.Projection) types.GlobalSecondaryIndex {
		return types.GlobalSecondaryIndex{IndexName: aws.String(name), KeySchema: keyElems(hash, ""), Projection: p}
	}
	for name, c := range map[string]struct {
		defs    []types.AttributeDefinition
		indexes []types.GlobalSecondaryIndex
	}{
		"undefined key":           {attrDefs("pk", "S"), []types.GlobalSecondaryIndex{gsi("byA", "a", all)}},
		"unused definition":       {attrDefs("pk", "S", "a", "S", "b", "S"), []types.GlobalSecondaryIndex{gsi("byA", "a", all)}},
		"duplicate name":          {attrDefs("pk", "S", "a", "S"), []types.GlobalSecondaryIndex{gsi("byA", "a", all), gsi("byA", "a", all)}},
		"short name":              {attrDefs("pk", "S", "a", "S"), []types.GlobalSecondaryIndex{gsi("by", "a", all)}},
		"bad key type":            {attrDefs("pk", "S", "a", "BOOL"), []types.GlobalSecondaryIndex{gsi("byA", "a", all)}},
		"no projection type":      {attrDefs("pk", "S", "a", "S"), []types.GlobalSecondaryIndex{gsi("byA", "a", &types.Projection{})}},
		"ALL with NonKey":         {attrDefs("pk", "S", "a", "S"), []types.GlobalSecondaryIndex{gsi("byA", "a", &types.Projection{ProjectionType: types.ProjectionTypeAll, NonKeyAttributes: []string{"x"}})}},
		"unknown projection":      {attrDefs("pk", "S", "a", "S"), []types.GlobalSecondaryIndex{gsi("byA", "a", &types.Projection{ProjectionType: "SOME"})}},
		"empty list of indexes":   {attrDefs("pk", "S"), []types.GlobalSecondaryIndex{}},
		"range key before hash":   {attrDefs("pk", "S", "a", "S"), []types.GlobalSecondaryIndex{{IndexName: aws.String("byA"), KeySchema: []types.KeySchemaElement{{AttributeName: aws.String("a"), KeyType: types.KeyTypeRange}}, Projection: all}}},
		"same hash and range key": {attrDefs("pk", "S", "a", "S"), []types.GlobalSecondaryIndex{{IndexName: aws.String("byA"), KeySchema: keyElems("a", "a"), Projection: all}}},
	} {
		_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{TableName: aws.String("t_" + strings.ReplaceAll(name, " ", "_")),
			KeySchema: keyElems("pk", ""), AttributeDefinitions: c.defs, GlobalSecondaryIndexes: c.indexes})
		if apiCode(err) != "ValidationException" {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{TableName: aws.String("local"), KeySchema: keyElems("pk", "sk"),
		AttributeDefinitions:  attrDefs("pk", "S", "sk", "S", "a", "S"),
		LocalSecondaryIndexes: []types.LocalSecondaryIndex{{IndexName: aws.String("byA"), KeySchema: keyElems("pk", "a"), Projection: all}}})
	if apiCode(err) != "ValidationException" {
		t.Errorf("a local secondary index: %v", err)
	}
}

// serveRecorded measures f serving the request rec passed on last.
func serveRecorded(b *testing.B, f *fakedynamo.Transport, rec *recorder) {
	ctx := context.Background()
	body, req := rec.body, rec.req
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

// benchIndex returns a transport whose table things has 10,000 items in
// group g of index byGroup (grp S, score N; INCLUDE name), and a client of
// it over rec.
func benchIndex(b *testing.B) (*fakedynamo.Transport, *dynamodb.Client, *recorder) {
	f := fakedynamo.New()
	rec := &recorder{next: f}
	db := f.Client(func(o *dynamodb.Options) { o.HTTPClient = &http.Client{Transport: rec} })
	_, err := db.CreateTable(context.Background(), &dynamodb.CreateTableInput{TableName: aws.String("things"), KeySchema: keyElems("pk", "sk"),
		AttributeDefinitions: attrDefs("pk", "S", "sk", "N", "grp", "S", "score", "N"),
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{IndexName: aws.String("byGroup"), KeySchema: keyElems("grp", "score"),
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeInclude, NonKeyAttributes: []string{"name"}}}}})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 10000; i += 25 {
		var reqs []types.WriteRequest
		for j := i; j < i+25; j++ {
			it := member("P"+strconv.Itoa(j%100), j, "g", strconv.Itoa((j*7919)%10000))
			it["ssn"] = s("ENC:" + strings.Repeat("A", 120))
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: it}})
		}
		if _, err := db.BatchWriteItem(context.Background(), &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{"things": reqs}}); err != nil {
			b.Fatal(err)
		}
	}
	return f, db, rec
}

// BenchmarkServeIndex measures the fake's own work on an index of 10,000
// items in one group: queries of it, and a write that moves an item in it.
func BenchmarkServeIndex(b *testing.B) {
	ctx := context.Background()
	f, db, rec := benchIndex(b)
	in := groupQuery("byGroup", "g", 0, true)
	in.TableName = aws.String("things")
	if out, err := db.Query(ctx, &in); err != nil || out.LastEvaluatedKey != nil {
		b.Fatal(out, err) // a page of all 10,000 items, of about 1 MB
	}
	b.Run("Query10000", func(b *testing.B) { serveRecorded(b, f, rec) })
	in.Limit, in.ExclusiveStartKey = aws.Int32(100), map[string]av{"pk": s("P1"), "sk": n("1"), "grp": s("g"), "score": n("7919")}
	in.FilterExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues[":n"] = aws.String("#n <> :n"), map[string]string{"#n": "name"}, s("x")
	if _, err := db.Query(ctx, &in); err != nil {
		b.Fatal(err)
	}
	b.Run("Query100Filtered", func(b *testing.B) { serveRecorded(b, f, rec) })
	put(b, db, member("P1", 1, "g", "5000"))
	b.Run("PutItem", func(b *testing.B) { serveRecorded(b, f, rec) })
}
