package fakedynamo_test

import (
	"context"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func m(kv map[string]av) av { return &types.AttributeValueMemberM{Value: kv} }
func l(vs ...av) av         { return &types.AttributeValueMemberL{Value: vs} }

var key = map[string]av{"pk": s("A"), "sk": n("1")}

func put(t testing.TB, db *dynamodb.Client, item map[string]av) {
	t.Helper()
	if _, err := db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String("things"), Item: item}); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, db *dynamodb.Client) map[string]av {
	t.Helper()
	out, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String("things"), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

var placeholder = regexp.MustCompile(`#[A-Za-z0-9_]+`)

// namesOf maps each #name the expressions use to name.
func namesOf(exprs ...string) map[string]string {
	names := map[string]string{}
	for _, e := range exprs {
		for _, p := range placeholder.FindAllString(e, -1) {
			names[p] = p[1:]
		}
	}
	return names
}

// update sends an UpdateItem of expr and cond.
func update(db *dynamodb.Client, expr, cond string, values map[string]av, names map[string]string) (*dynamodb.UpdateItemOutput, error) {
	in := &dynamodb.UpdateItemInput{TableName: aws.String("things"), Key: key, ExpressionAttributeValues: values}
	if expr != "" {
		in.UpdateExpression = aws.String(expr)
	}
	if cond != "" {
		in.ConditionExpression = aws.String(cond)
	}
	if len(names) > 0 {
		in.ExpressionAttributeNames = names
	}
	return db.UpdateItem(context.Background(), in)
}

func TestUpdateSetsNestedPaths(t *testing.T) {
	_, db := newTable(t)
	put(t, db, map[string]av{"pk": s("A"), "sk": n("1"), "doc": m(map[string]av{"a": n("1"), "list": l(s("x"), s("y"))}), "top": s("old")})
	b := expression.Set(expression.Name("doc.b"), expression.Value("new")).
		Set(expression.Name("doc.list[1]"), expression.Value("Y")).
		Set(expression.Name("doc.list[7]"), expression.Value("z")).
		Set(expression.Name("doc.list[5]"), expression.Value("w")).
		Set(expression.Name("top"), expression.Value(map[string]int{"k": 1}))
	e, err := expression.NewBuilder().WithUpdate(b).Build()
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{TableName: aws.String("things"), Key: key,
		UpdateExpression: e.Update(), ExpressionAttributeNames: e.Names(), ExpressionAttributeValues: e.Values()})
	if err != nil {
		t.Fatal(err)
	}
	// Indexes past the end append in the order of their numbers.
	want := map[string]av{"pk": s("A"), "sk": n("1"), "top": m(map[string]av{"k": n("1")}),
		"doc": m(map[string]av{"a": n("1"), "b": s("new"), "list": l(s("x"), s("Y"), s("w"), s("z"))})}
	if got := get(t, db); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

func TestUpdateRefusesInvalidPaths(t *testing.T) {
	_, db := newTable(t)
	item := map[string]av{"pk": s("A"), "sk": n("1"), "doc": m(map[string]av{"a": n("1"), "list": l(s("x"), s("y"))})}
	put(t, db, item)
	for _, expr := range []string{
		"SET #missing.#a = :v",      // no such attribute
		"SET #doc.#missing.#a = :v", // no such member
		"SET #doc.#a.#b = :v",       // a member of a number
		"SET #doc.#list[9].#a = :v", // past the list's end
		"SET #doc[0] = :v",          // an index into a map
		"SET #doc.#list.#a = :v",    // a name into a list
	} {
		_, err := update(db, expr, "", map[string]av{":v": s("v")}, namesOf(expr))
		if apiCode(err) != "ValidationException" || !strings.Contains(err.Error(), "document path provided in the update expression is invalid") {
			t.Errorf("%s: %v", expr, err)
		}
	}
	if got := get(t, db); !reflect.DeepEqual(got, item) {
		t.Fatalf("a failed update changed the item: %v", got)
	}
}

func TestUpdateCreatesAndAdds(t *testing.T) {
	_, db := newTable(t)
	// No condition: the item is created, with its key.
	expr := "ADD #count :n SET #name = :s"
	if _, err := update(db, expr, "", map[string]av{":n": n("1.50"), ":s": s("x")}, namesOf(expr)); err != nil {
		t.Fatal(err)
	}
	want := map[string]av{"pk": s("A"), "sk": n("1"), "count": n("1.5"), "name": s("x")}
	if got := get(t, db); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	expr = "SET #name = :s ADD #count :n"
	for _, c := range []struct{ add, want string }{
		{"2.25", "3.75"}, {"-3.75", "0"}, {"0.1", "0.1"}, {"0.2", "0.3"}, {"1e3", "1000.3"},
		{"-1000.3", "0"}, {"1234567890123456789012345678901234567.8", "1234567890123456789012345678901234567.8"},
	} {
		if _, err := update(db, expr, "", map[string]av{":n": n(c.add), ":s": s("y")}, namesOf(expr)); err != nil {
			t.Fatal(c.add, err)
		}
		if got := get(t, db)["count"].(*types.AttributeValueMemberN).Value; got != c.want {
			t.Errorf("add %s: %s, want %s", c.add, got, c.want)
		}
	}
}

func TestUpdateRefusesBadAdds(t *testing.T) {
	f, db := newTable(t)
	put(t, db, map[string]av{"pk": s("A"), "sk": n("1"), "count": n("1234567890123456789012345678901234567.8"), "name": s("x")})
	for expr, add := range map[string]string{
		"ADD #count :n": "0.01",  // a sum of 39 significant digits
		"ADD #name :n":  "1",     // to a string
		"ADD #new :n":   "1e126", // beyond DynamoDB's range
	} {
		if _, err := update(db, expr, "", map[string]av{":n": n(add)}, namesOf(expr)); apiCode(err) != "ValidationException" {
			t.Errorf("%s with %s: %v", expr, add, err)
		}
	}
	if got := f.Requests("UpdateItem"); got != 3 {
		t.Errorf("UpdateItem requests: %d", got)
	}
}

func TestUpdateOfNothingCreatesTheKey(t *testing.T) {
	_, db := newTable(t)
	if _, err := db.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{TableName: aws.String("things"), Key: key}); err != nil {
		t.Fatal(err)
	}
	if got := get(t, db); !reflect.DeepEqual(got, key) {
		t.Errorf("an empty update made %v", got)
	}
}

// condCase is an update on condition cond, which holds or not.
type condCase struct {
	cond   string
	values map[string]av
	holds  bool
}

func vals(kv ...any) map[string]av {
	out := map[string]av{":new": s("new")}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1].(av)
	}
	return out
}

func TestUpdateConditions(t *testing.T) {
	_, db := newTable(t)
	old := map[string]av{"pk": s("A"), "sk": n("1"), "v": n("1.50"), "doc": m(map[string]av{"x": l(s("a"), n("2"))}),
		"set": &types.AttributeValueMemberSS{Value: []string{"p", "q"}}}
	for _, c := range []condCase{
		{"#v = :v", vals(":v", n("1.5")), true}, // numbers by value
		{"#v = :v", vals(":v", s("1.5")), false},
		{"#v = :v", vals(":v", n("1.51")), false},
		{"#doc.#x[1] = :v", vals(":v", n("2.0")), true},
		{"#doc = :v", vals(":v", m(map[string]av{"x": l(s("a"), n("2"))})), true},
		{"#doc.#x = :v", vals(":v", l(n("2"), s("a"))), false}, // lists in order
		{"#set = :v", vals(":v", &types.AttributeValueMemberSS{Value: []string{"q", "p"}}), true},
		{"#gone = :v", vals(":v", s("x")), false},
		{":v = #v AND attribute_exists(#doc.#x[0])", vals(":v", n("15e-1")), true},
		{"attribute_exists(#doc.#x[2])", vals(), false},
		{"attribute_not_exists(#gone) AND attribute_not_exists(#doc.#y)", vals(), true},
		{"attribute_not_exists(#pk)", vals(), false},
		{"attribute_exists(#pk) AND #v = :v", vals(":v", n("2")), false},
		{"#v <> :v", vals(":v", n("15e-1")), false},
		{"#v <> :v", vals(":v", s("1.5")), true},
		{"#gone <> :v", vals(":v", s("x")), true}, // a missing path equals nothing
	} {
		put(t, db, old)
		checkCondition(t, db, c, old)
		if got := get(t, db); c.holds != (got["w"] != nil) {
			t.Errorf("%s: after the update, w is %v", c.cond, got["w"])
		}
	}
}

// checkCondition sends an update on c's condition and checks that it
// succeeded, or failed returning the old item.
func checkCondition(t *testing.T, db *dynamodb.Client, c condCase, old map[string]av) {
	t.Helper()
	in := &dynamodb.UpdateItemInput{TableName: aws.String("things"), Key: key, UpdateExpression: aws.String("SET #w = :new"),
		ConditionExpression: aws.String(c.cond), ExpressionAttributeValues: c.values, ExpressionAttributeNames: namesOf("#w", c.cond),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld}
	_, err := db.UpdateItem(context.Background(), in)
	var ccf *types.ConditionalCheckFailedException
	switch {
	case c.holds && err != nil:
		t.Errorf("%s: %v", c.cond, err)
	case !c.holds && !errors.As(err, &ccf):
		t.Errorf("%s: %v, want a failed condition", c.cond, err)
	case !c.holds && !reflect.DeepEqual(ccf.Item, old):
		t.Errorf("%s: the failure returns %v", c.cond, ccf.Item)
	}
}

func TestFailedConditionWithoutOldItem(t *testing.T) {
	_, db := newTable(t)
	put(t, db, key)
	// Without ALL_OLD, a failure returns no item.
	_, err := update(db, "SET #w = :new", "attribute_not_exists(#pk)", vals(), namesOf("#w #pk"))
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) || ccf.Item != nil {
		t.Errorf("a failure without ALL_OLD: %v", err)
	}
	// On a missing item, neither.
	_, err = db.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{TableName: aws.String("things"), Key: map[string]av{"pk": s("none"), "sk": n("1")},
		UpdateExpression: aws.String("SET #w = :new"), ConditionExpression: aws.String("attribute_exists(#w)"),
		ExpressionAttributeNames: namesOf("#w"), ExpressionAttributeValues: vals(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld})
	if !errors.As(err, &ccf) || ccf.Item != nil {
		t.Errorf("a failure on a missing item: %v", err)
	}
}

func TestUpdateConsumedCapacity(t *testing.T) {
	_, db := newTable(t)
	put(t, db, map[string]av{"pk": s("A"), "sk": n("1"), "big": s(strings.Repeat("x", 3000))})
	in := &dynamodb.UpdateItemInput{TableName: aws.String("things"), Key: key, UpdateExpression: aws.String("SET #a = :a"),
		ExpressionAttributeNames: map[string]string{"#a": "a"}, ExpressionAttributeValues: map[string]av{":a": s("x")}}
	out, err := db.UpdateItem(context.Background(), in)
	if err != nil || out.ConsumedCapacity != nil {
		t.Fatalf("without ReturnConsumedCapacity: %v %v", out.ConsumedCapacity, err)
	}
	in.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err = db.UpdateItem(context.Background(), in)
	if err != nil || out.ConsumedCapacity == nil || aws.ToString(out.ConsumedCapacity.TableName) != "things" || aws.ToFloat64(out.ConsumedCapacity.CapacityUnits) != 3 {
		t.Fatalf("TOTAL: %+v %v", out.ConsumedCapacity, err)
	}
}

func TestUpdateRefusesWhatItDoesNotImplement(t *testing.T) {
	_, db := newTable(t)
	put(t, db, map[string]av{"pk": s("A"), "sk": n("1"), "a": n("1"), "l": l(s("x"))})
	one := map[string]av{":v": n("1")}
	for _, c := range []struct {
		expr, cond string
		unused     string // a name given but not used
	}{
		{"REMOVE #a", "", ""},
		{"DELETE #a :v", "", ""},
		{"SET #a = if_not_exists(#a, :v)", "", ""},
		{"SET #l = list_append(#l, :v)", "", ""},
		{"SET #a = #a + :v", "", ""},
		{"SET #a = :v + :v", "", ""},
		{"SET a = :v", "", ""}, // names must be placeholders
		{"ADD #l[0] :v", "", ""},
		{"SET #a = :v SET #l = :v", "", ""},
		{"SET #a = :v ADD #a :v", "", ""},   // overlapping paths
		{"SET #l = :v, #l[0] = :v", "", ""}, // overlapping paths
		{"SET #pk = :v", "", ""},            // a key attribute
		{"SET #a = :v", "#a = :v OR #a = :v", ""},
		{"SET #a = :v", "NOT #a = :v", ""},
		{"SET #a = :v", "#a < :v", ""},
		{"SET #a = :v", "(#a = :v OR #a = :v)", ""},
		{"SET #a = :v", "(#a = :v", ""},
		{"SET #a = :v", "begins_with(#a, :v)", ""},
		{"SET #a = :v", "", "#l"},      // a name unused
		{"SET #a = :v", "#a = :w", ""}, // a value undefined
	} {
		_, err := update(db, c.expr, c.cond, one, namesOf(c.expr, c.cond, c.unused))
		if apiCode(err) != "ValidationException" {
			t.Errorf("%q if %q: %v", c.expr, c.cond, err)
		}
	}
	for name, in := range map[string]*dynamodb.UpdateItemInput{
		"ReturnValues":     {ReturnValues: types.ReturnValueAllNew},
		"AttributeUpdates": {AttributeUpdates: map[string]types.AttributeValueUpdate{"a": {Value: n("2")}}},
		"INDEXES":          {ReturnConsumedCapacity: types.ReturnConsumedCapacityIndexes},
	} {
		in.TableName, in.Key = aws.String("things"), key
		if _, err := db.UpdateItem(context.Background(), in); apiCode(err) != "ValidationException" {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got := get(t, db); got["a"].(*types.AttributeValueMemberN).Value != "1" || len(got) != 4 {
		t.Errorf("a refused update changed the item: %v", got)
	}
}
