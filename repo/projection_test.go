package repo_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/repo"
)

// projectingDB holds items keyed by "pk" and answers every read the way
// DynamoDB would, projection included, recording the attributes projected.
type projectingDB struct {
	repo.API // other operations are not used and panic

	items []map[string]types.AttributeValue

	mu        sync.Mutex
	projected [][]string // per request, the attributes asked for
}

func (d *projectingDB) answer(projection *string, names map[string]string, items []map[string]types.AttributeValue) []map[string]types.AttributeValue {
	var attrs []string
	if projection != nil {
		for _, ph := range strings.Split(*projection, ", ") {
			attrs = append(attrs, names[ph])
		}
	}
	d.mu.Lock()
	d.projected = append(d.projected, attrs)
	d.mu.Unlock()
	out := make([]map[string]types.AttributeValue, len(items))
	for i, it := range items {
		out[i] = project(it, projection, names)
	}
	return out
}

func (d *projectingDB) find(key map[string]types.AttributeValue) map[string]types.AttributeValue {
	for _, it := range d.items {
		if it["pk"].(*types.AttributeValueMemberS).Value == key["pk"].(*types.AttributeValueMemberS).Value {
			return it
		}
	}
	return nil
}

func (d *projectingDB) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	it := d.find(in.Key)
	return &dynamodb.GetItemOutput{Item: d.answer(in.ProjectionExpression, in.ExpressionAttributeNames, []map[string]types.AttributeValue{it})[0]}, nil
}

func (d *projectingDB) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return &dynamodb.QueryOutput{Items: d.answer(in.ProjectionExpression, in.ExpressionAttributeNames, d.items)}, nil
}

func (d *projectingDB) Scan(_ context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	return &dynamodb.ScanOutput{Items: d.answer(in.ProjectionExpression, in.ExpressionAttributeNames, d.items)}, nil
}

func (d *projectingDB) BatchGetItem(_ context.Context, in *dynamodb.BatchGetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	out := &dynamodb.BatchGetItemOutput{Responses: map[string][]map[string]types.AttributeValue{}}
	for table, ka := range in.RequestItems {
		var found []map[string]types.AttributeValue
		for _, k := range ka.Keys {
			if it := d.find(k); it != nil {
				found = append(found, it)
			}
		}
		out.Responses[table] = d.answer(ka.ProjectionExpression, ka.ExpressionAttributeNames, found)
	}
	return out, nil
}

// Projecting an encrypted attribute bound to its item (version 2, context
// from the item) brings along the key and context attributes, so it opens.
func TestProjectionBringsWhatOpeningNeeds(t *testing.T) {
	ctx := context.Background()
	db := &projectingDB{}
	r := newRecords(t, boundSpec, enctest.New(), repo.WithClient(db))
	db.items = []map[string]types.AttributeValue{marshal(t, r, newRecord("A", 7, "acme"))}
	k := repo.Key{Hash: "A", Range: 7}
	all := expression.Key("pk").Equal(expression.Value("A"))

	reads := map[string]func(opts ...repo.ReadOption) (Record, error){
		"Get": func(opts ...repo.ReadOption) (Record, error) { return r.Get(ctx, k, opts...) },
		"Query": func(opts ...repo.ReadOption) (Record, error) {
			return firstItem(r.Query(ctx, all, opts...))
		},
		"QueryPage": func(opts ...repo.ReadOption) (Record, error) {
			p, err := r.QueryPage(ctx, all, "", opts...)
			if err != nil || len(p.Items) == 0 {
				return Record{}, err
			}
			return p.Items[0], nil
		},
		"Scan": func(opts ...repo.ReadOption) (Record, error) { return firstItem(r.Scan(ctx, opts...)) },
		"parallel Scan": func(opts ...repo.ReadOption) (Record, error) {
			return firstItem(r.Scan(ctx, append(opts, repo.Segments(2))...))
		},
		"BatchGet": func(opts ...repo.ReadOption) (Record, error) {
			got, err := r.BatchGet(ctx, []repo.Key{k}, opts...)
			if err != nil || len(got) == 0 {
				return Record{}, err
			}
			return got[0], nil
		},
	}
	for name, read := range reads {
		t.Run(name, func(t *testing.T) {
			db.projected = nil
			got, err := read(repo.Project("ssn"))
			if err != nil {
				t.Fatal(err)
			}
			if value(t, got.SSN) != "ssn of A" || got.Note.IsPresent() {
				t.Fatalf("ssn %v, note present %v", got.SSN, got.Note.IsPresent())
			}
			for _, p := range db.projected {
				for _, want := range []string{"ssn", "pk", "sk", "tenant_id"} {
					if !slices.Contains(p, want) {
						t.Fatalf("projection %v lacks %s", p, want)
					}
				}
				if slices.Contains(p, "note") {
					t.Fatalf("projection %v has more than it needs", p)
				}
			}

			// A nested document with bound values, by a path into it.
			db.projected = nil
			got, err = read(repo.Project("cards[1].number"))
			if err != nil {
				t.Fatal(err)
			}
			if p := db.projected[0]; !slices.Contains(p, "tenant_id") || !slices.Contains(p, "sk") {
				t.Fatalf("projection %v lacks the key or context", p)
			}

			// Plain attributes need nothing more.
			db.projected = nil
			if _, err := read(repo.Project("tenant_id")); err != nil {
				t.Fatal(err)
			}
			if p := db.projected[0]; len(p) != 1 && name != "BatchGet" {
				t.Fatalf("projection %v, want tenant_id alone", p)
			}
		})
	}
}

func firstItem[T any](seq func(func(T, error) bool)) (T, error) {
	var zero T
	for item, err := range seq {
		return item, err
	}
	return zero, errors.New("no item")
}

// Get and Unmarshal name the table when a value cannot be opened, as Query does.
func TestOpenErrorsNameTheTable(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	db := &projectingDB{}
	r := newRecords(t, boundSpec, keys, repo.WithClient(db))
	db.items = []map[string]types.AttributeValue{marshal(t, r, newRecord("A", 7, "acme"))}
	keys.Fail = func(op string, _ enc.KeyRef) error {
		if op == "Decrypt" {
			return enc.ErrAccessDenied
		}
		return nil
	}
	_, err := r.Get(ctx, repo.Key{Hash: "A", Range: 7})
	if !errors.Is(err, enc.ErrAccessDenied) || !strings.Contains(err.Error(), "repo records: get") || !strings.Contains(err.Error(), `"A"`) {
		t.Fatalf("Get: %v", err)
	}
	if _, ok := enc.AsError(err); !ok {
		t.Fatalf("Get: %v does not wrap the *enc.Error", err)
	}
	_, err = r.Unmarshal(ctx, db.items[0])
	if !errors.Is(err, enc.ErrAccessDenied) || !strings.Contains(err.Error(), "repo records: unmarshal") {
		t.Fatalf("Unmarshal: %v", err)
	}
	err = firstErr(r.Query(ctx, expression.Key("pk").Equal(expression.Value("A"))))
	if !errors.Is(err, enc.ErrAccessDenied) || !strings.Contains(err.Error(), "repo records: query") {
		t.Fatalf("Query: %v", err)
	}
}
