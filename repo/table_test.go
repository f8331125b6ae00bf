package repo_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// tableAPI keeps one table's description: CreateTable makes it ACTIVE at
// once, DeleteTable removes it after deletes DescribeTable calls saying
// DELETING.
type tableAPI struct {
	repo.API
	mu        sync.Mutex
	created   *dynamodb.CreateTableInput
	desc      *types.TableDescription
	deleting  int
	describes int
}

func (a *tableAPI) CreateTable(_ context.Context, in *dynamodb.CreateTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.created = in
	a.desc = &types.TableDescription{TableName: in.TableName, TableStatus: types.TableStatusActive, KeySchema: in.KeySchema}
	return &dynamodb.CreateTableOutput{TableDescription: a.desc}, nil
}

func (a *tableAPI) DescribeTable(_ context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.describes++
	if a.desc != nil && a.desc.TableStatus == types.TableStatusDeleting {
		if a.deleting == 0 {
			a.desc = nil
		}
		a.deleting--
	}
	if a.desc == nil {
		return nil, &types.ResourceNotFoundException{Message: aws.String("no table " + aws.ToString(in.TableName))}
	}
	return &dynamodb.DescribeTableOutput{Table: a.desc}, nil
}

func (a *tableAPI) DeleteTable(_ context.Context, in *dynamodb.DeleteTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteTableOutput, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.desc == nil {
		return nil, &types.ResourceNotFoundException{Message: aws.String("no table " + aws.ToString(in.TableName))}
	}
	a.desc.TableStatus = types.TableStatusDeleting
	return &dynamodb.DeleteTableOutput{TableDescription: a.desc}, nil
}

// indexedOrder declares a global index by status and number, a global
// index by email alone and a local index by creation time.
type indexedOrder struct {
	Customer string                  `dynamodbav:"customer" repo:"hash"`
	Number   int                     `dynamodbav:"number" repo:"range,gsi:by-status:range"`
	Status   string                  `dynamodbav:"status" repo:"gsi:by-status:hash"`
	Email    string                  `dynamodbav:"email" repo:"gsi:ByEmail:hash"`
	Created  int64                   `dynamodbav:"created" repo:"lsi:ByCreated:range"`
	Region   string                  `dynamodbav:"region"`
	Card     field.Encrypted[string] `dynamodbav:"card" enc:"ctx"`
	Note     string                  `dynamodbav:"note"`
}

func indexRegistry(t *testing.T) *enc.Registry {
	t.Helper()
	reg := trapRegistry(t)
	reg.MustRegister("ctx", enc.Spec{KeyID: "alias/ctx", Version: enc.Version2, ContextFrom: map[string]string{"region": "region"}})
	return reg
}

func newIndexed[T any](t *testing.T, db repo.API, opts ...repo.Option) (*repo.Repo[T], error) {
	t.Helper()
	base := []repo.Option{repo.WithRegistry(indexRegistry(t)), repo.WithEncryptor(enc.New(enctest.New())), repo.WithClient(db)}
	return repo.New[T]("orders", append(base, opts...)...)
}

// canonical renders part of a request as JSON for comparison.
func canonical(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCreateTableBuildsDeclaredIndexes(t *testing.T) {
	ctx := context.Background()
	db := &tableAPI{}
	r, err := newIndexed[indexedOrder](t, db,
		repo.WithIndexProjection("ByEmail"),
		repo.WithIndexProjection("ByCreated", "note", "card", "customer"))
	if err != nil {
		t.Fatal(err)
	}
	raised := false
	if err := r.CreateTable(ctx, func(in *dynamodb.CreateTableInput) { raised = len(in.GlobalSecondaryIndexes) == 2 }); err != nil {
		t.Fatal(err)
	}
	in := db.created
	if !raised {
		t.Error("the request changers did not run after the indexes were added")
	}
	s, n := types.ScalarAttributeTypeS, types.ScalarAttributeTypeN
	wantDefs := []types.AttributeDefinition{
		{AttributeName: aws.String("customer"), AttributeType: s},
		{AttributeName: aws.String("number"), AttributeType: n},
		{AttributeName: aws.String("created"), AttributeType: n},
		{AttributeName: aws.String("email"), AttributeType: s},
		{AttributeName: aws.String("status"), AttributeType: s},
	}
	if got, want := canonical(t, in.AttributeDefinitions), canonical(t, wantDefs); got != want {
		t.Errorf("attribute definitions\n got %s\nwant %s", got, want)
	}
	key := func(name string, kt types.KeyType) types.KeySchemaElement {
		return types.KeySchemaElement{AttributeName: aws.String(name), KeyType: kt}
	}
	wantGSIs := []types.GlobalSecondaryIndex{
		{IndexName: aws.String("ByEmail"), KeySchema: []types.KeySchemaElement{key("email", types.KeyTypeHash)},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly}},
		{IndexName: aws.String("by-status"), KeySchema: []types.KeySchemaElement{key("status", types.KeyTypeHash), key("number", types.KeyTypeRange)},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll}},
	}
	if got, want := canonical(t, in.GlobalSecondaryIndexes), canonical(t, wantGSIs); got != want {
		t.Errorf("global indexes\n got %s\nwant %s", got, want)
	}
	// card needs region (its context) to open; customer is a key, always there.
	wantLSIs := []types.LocalSecondaryIndex{
		{IndexName: aws.String("ByCreated"), KeySchema: []types.KeySchemaElement{key("customer", types.KeyTypeHash), key("created", types.KeyTypeRange)},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeInclude, NonKeyAttributes: []string{"note", "card", "region"}}},
	}
	if got, want := canonical(t, in.LocalSecondaryIndexes), canonical(t, wantLSIs); got != want {
		t.Errorf("local indexes\n got %s\nwant %s", got, want)
	}
}

func TestIndexTagRefusals(t *testing.T) {
	type noHash struct {
		PK string `dynamodbav:"pk" repo:"hash"`
		SK string `dynamodbav:"sk" repo:"range"`
		A  string `dynamodbav:"a" repo:"gsi:ByA:range"`
	}
	type lsiHash struct {
		PK string `dynamodbav:"pk" repo:"hash"`
		SK string `dynamodbav:"sk" repo:"range"`
		A  string `dynamodbav:"a" repo:"lsi:ByA:hash"`
	}
	type lsiNoRange struct {
		PK string `dynamodbav:"pk" repo:"hash"`
		A  string `dynamodbav:"a" repo:"lsi:ByA:range"`
	}
	type lsiTableRange struct {
		PK string `dynamodbav:"pk" repo:"hash"`
		SK string `dynamodbav:"sk" repo:"range,lsi:BySK:range"`
	}
	type twoHashes struct {
		PK string `dynamodbav:"pk" repo:"hash"`
		A  string `dynamodbav:"a" repo:"gsi:ByA:hash"`
		B  string `dynamodbav:"b" repo:"gsi:ByA:hash"`
	}
	type sameField struct {
		PK string `dynamodbav:"pk" repo:"hash"`
		A  string `dynamodbav:"a" repo:"gsi:ByA:hash,gsi:ByA:range"`
	}
	type globalAndLocal struct {
		PK string `dynamodbav:"pk" repo:"hash"`
		SK string `dynamodbav:"sk" repo:"range"`
		A  string `dynamodbav:"a" repo:"gsi:Mixed:hash"`
		B  string `dynamodbav:"b" repo:"lsi:Mixed:range"`
	}
	type encrypted struct {
		PK string                  `dynamodbav:"pk" repo:"hash"`
		A  field.Encrypted[string] `dynamodbav:"a" enc:"pii" repo:"gsi:ByA:hash"`
	}
	type boolKey struct {
		PK string `dynamodbav:"pk" repo:"hash"`
		A  bool   `dynamodbav:"a" repo:"gsi:ByA:hash"`
	}
	type shortName struct {
		PK string `dynamodbav:"pk" repo:"hash"`
		A  string `dynamodbav:"a" repo:"gsi:AB:hash"`
	}
	type badName struct {
		PK string `dynamodbav:"pk" repo:"hash"`
		A  string `dynamodbav:"a" repo:"gsi:by status:hash"`
	}
	type unknownPart struct {
		PK string `dynamodbav:"pk" repo:"hash"`
		A  string `dynamodbav:"a" repo:"gsi:ByA:sort"`
	}
	for _, c := range []struct {
		name  string
		new   func(*testing.T) error
		wants []string
	}{
		{"gsi without hash", trapNew[noHash], []string{"ByA", "hash"}},
		{"lsi hash", trapNew[lsiHash], []string{"A", "lsi:ByA:range"}},
		{"lsi without table range", trapNew[lsiNoRange], []string{"ByA", "range key"}},
		{"lsi on the table range", trapNew[lsiTableRange], []string{"SK", "BySK"}},
		{"two hashes", trapNew[twoHashes], []string{"ByA", "A", "B"}},
		{"one field both keys", trapNew[sameField], []string{"A", "both"}},
		{"global and local", trapNew[globalAndLocal], []string{"Mixed", "global", "local"}},
		{"encrypted", trapNew[encrypted], []string{"A", "encrypted"}},
		{"bool key", trapNew[boolKey], []string{"A", "bool"}},
		{"short name", trapNew[shortName], []string{"A", `"AB"`, "3 to 255"}},
		{"bad name", trapNew[badName], []string{"A", `"by status"`}},
		{"unknown part", trapNew[unknownPart], []string{"A", "gsi:ByA:sort"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.new(t)
			if err == nil {
				t.Fatal("New accepted it")
			}
			trapRequireText(t, err, c.wants...)
		})
	}
}

func TestIndexProjectionRefusals(t *testing.T) {
	for _, c := range []struct {
		name  string
		opts  []repo.Option
		wants []string
	}{
		{"undeclared index", []repo.Option{repo.WithIndexProjection("ByName")}, []string{`"ByName"`, "declares no index"}},
		{"unknown attribute", []repo.Option{repo.WithIndexProjection("ByEmail", "nickname")}, []string{`"ByEmail"`, `"nickname"`}},
		{"nested path", []repo.Option{repo.WithIndexProjection("ByEmail", "card.x")}, []string{`"card.x"`}},
		{"twice", []repo.Option{repo.WithIndexProjection("ByEmail"), repo.WithIndexProjection("ByEmail", "note")}, []string{`"ByEmail"`, "twice"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := newIndexed[indexedOrder](t, &tableAPI{}, c.opts...)
			if err == nil {
				t.Fatal("New accepted it")
			}
			trapRequireText(t, err, c.wants...)
		})
	}
}

func TestDescribeAndDeleteTable(t *testing.T) {
	ctx := context.Background()
	db := &tableAPI{deleting: 2}
	r, err := newIndexed[indexedOrder](t, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.DescribeTable(ctx); !errors.As(err, new(*types.ResourceNotFoundException)) || !strings.Contains(err.Error(), "repo orders: describe table:") {
		t.Fatalf("DescribeTable of a missing table: %v", err)
	}
	if err := r.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := r.DescribeTable(ctx)
	if err != nil || d.TableStatus != types.TableStatusActive || aws.ToString(d.TableName) != "orders" {
		t.Fatalf("DescribeTable = %+v, %v", d, err)
	}
	before := db.describes
	if err := r.DeleteTable(ctx); err != nil {
		t.Fatal(err)
	}
	// DeleteTable waits through the DELETING descriptions until the table is gone.
	if waited := db.describes - before; waited < 3 || db.desc != nil {
		t.Fatalf("DeleteTable returned after %d DescribeTable calls, table %+v", waited, db.desc)
	}
	if err := r.DeleteTable(ctx); !errors.As(err, new(*types.ResourceNotFoundException)) || !strings.Contains(err.Error(), "repo orders: delete table:") {
		t.Fatalf("DeleteTable of a missing table: %v", err)
	}
}

// SkipExpired on a declared global index that does not copy the ttl
// attribute would keep every item; it is refused.
func TestSkipExpiredNeedsTheTTLInTheIndex(t *testing.T) {
	type expiring struct {
		PK      string `dynamodbav:"pk" repo:"hash"`
		SK      string `dynamodbav:"sk" repo:"range"`
		Status  string `dynamodbav:"status" repo:"gsi:ByStatus:hash,gsi:Keys:hash,gsi:All:hash,gsi:WithTTL:hash"`
		Other   string `dynamodbav:"other" repo:"lsi:Local:range"`
		Expires int64  `dynamodbav:"expires" repo:"ttl"`
	}
	r, err := newIndexed[expiring](t, newTrapDB("orders", "pk", "sk"),
		repo.WithIndexProjection("ByStatus", "other"), repo.WithIndexProjection("Keys"),
		repo.WithIndexProjection("WithTTL", "expires"), repo.WithIndexProjection("Local"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ix := range []string{"ByStatus", "Keys"} {
		if _, err := r.ScanCount(ctx, repo.Index(ix), repo.SkipExpired()); err == nil || !strings.Contains(err.Error(), `"expires"`) {
			t.Errorf("SkipExpired on index %s without the ttl attribute: %v", ix, err)
		}
	}
	for _, ix := range []string{"All", "WithTTL", "Local", "Undeclared"} {
		if _, err := r.ScanCount(ctx, repo.Index(ix), repo.SkipExpired()); err != nil {
			t.Errorf("SkipExpired on index %s: %v", ix, err)
		}
	}
}

func TestIndexOrderIsStable(t *testing.T) {
	var first []string
	for range 20 {
		db := &tableAPI{}
		r, err := newIndexed[indexedOrder](t, db)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.CreateTable(context.Background()); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range db.created.AttributeDefinitions {
			got = append(got, aws.ToString(d.AttributeName))
		}
		if first == nil {
			first = got
		} else if !slices.Equal(first, got) {
			t.Fatalf("CreateTable requests differ: %v then %v", first, got)
		}
	}
}
