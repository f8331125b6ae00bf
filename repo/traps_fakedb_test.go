package repo_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/repo"
)

// trapDB is an in-memory table for the trap tests: items are stored by
// their key attributes (keyNames), Query and Scan return every item in key
// order (no key condition, filter or projection is evaluated; the inputs are
// recorded), UpdateItem applies `SET #a = :b, ...` to top-level attributes
// and ignores conditions. CreateTable and DescribeTable panic.
type trapDB struct {
	repo.API

	table    string
	keyNames []string

	mu          sync.Mutex
	items       map[string]map[string]types.AttributeValue
	queries     []dynamodb.QueryInput
	scans       []dynamodb.ScanInput
	puts        int
	batchWrites int
}

func newTrapDB(table string, keyNames ...string) *trapDB {
	return &trapDB{table: table, keyNames: keyNames, items: map[string]map[string]types.AttributeValue{}}
}

// id is the stored key of an item or key map.
func (f *trapDB) id(m map[string]types.AttributeValue) (string, error) {
	var parts []string
	for _, n := range f.keyNames {
		switch v := m[n].(type) {
		case *types.AttributeValueMemberS:
			parts = append(parts, "S:"+v.Value)
		case *types.AttributeValueMemberN:
			parts = append(parts, "N:"+v.Value)
		case *types.AttributeValueMemberB:
			parts = append(parts, fmt.Sprintf("B:%x", v.Value))
		default:
			return "", fmt.Errorf("trapDB: key attribute %q is %T", n, m[n])
		}
	}
	return strings.Join(parts, "|"), nil
}

func (f *trapDB) checkTable(name *string) error {
	if aws.ToString(name) != f.table {
		return fmt.Errorf("trapDB: table %q, want %q", aws.ToString(name), f.table)
	}
	return nil
}

// set stores an item as it is, bypassing the repository.
func (f *trapDB) set(item map[string]types.AttributeValue) {
	id, err := f.id(item)
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items[id] = maps.Clone(item)
}

// get returns the stored item with the given hash (and range) key values,
// or nil.
func (f *trapDB) get(key map[string]types.AttributeValue) map[string]types.AttributeValue {
	id, err := f.id(key)
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.items[id])
}

func (f *trapDB) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.items)
}

// writes counts the PutItem and BatchWriteItem requests.
func (f *trapDB) writes() (puts, batchWrites int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts, f.batchWrites
}

// reads returns the Query and Scan requests so far.
func (f *trapDB) reads() ([]dynamodb.QueryInput, []dynamodb.ScanInput) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.queries), slices.Clone(f.scans)
}

func (f *trapDB) sorted() []map[string]types.AttributeValue {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []map[string]types.AttributeValue
	for _, id := range slices.Sorted(maps.Keys(f.items)) {
		out = append(out, maps.Clone(f.items[id]))
	}
	return out
}

func (f *trapDB) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if err := f.checkTable(in.TableName); err != nil {
		return nil, err
	}
	id, err := f.id(in.Item)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts++
	f.items[id] = maps.Clone(in.Item)
	return &dynamodb.PutItemOutput{}, nil
}

func (f *trapDB) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if err := f.checkTable(in.TableName); err != nil {
		return nil, err
	}
	id, err := f.id(in.Key)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &dynamodb.GetItemOutput{Item: maps.Clone(f.items[id])}, nil
}

func (f *trapDB) DeleteItem(_ context.Context, in *dynamodb.DeleteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if err := f.checkTable(in.TableName); err != nil {
		return nil, err
	}
	id, err := f.id(in.Key)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &dynamodb.DeleteItemOutput{}
	if in.ReturnValues == types.ReturnValueAllOld {
		out.Attributes = f.items[id]
	}
	delete(f.items, id)
	return out, nil
}

func (f *trapDB) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if err := f.checkTable(in.TableName); err != nil {
		return nil, err
	}
	id, err := f.id(in.Key)
	if err != nil {
		return nil, err
	}
	expr := strings.TrimSpace(aws.ToString(in.UpdateExpression))
	clauses, ok := strings.CutPrefix(expr, "SET ")
	if !ok || strings.ContainsAny(clauses, "\n()[].") {
		return nil, fmt.Errorf("trapDB: only SET of top-level attributes is supported, got %q", expr)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.items[id]
	item := maps.Clone(old)
	if item == nil {
		item = maps.Clone(in.Key)
	}
	for _, c := range strings.Split(clauses, ",") {
		lhs, rhs, ok := strings.Cut(strings.TrimSpace(c), " = ")
		name, okName := in.ExpressionAttributeNames[strings.TrimSpace(lhs)]
		value, okValue := in.ExpressionAttributeValues[strings.TrimSpace(rhs)]
		if !ok || !okName || !okValue {
			return nil, fmt.Errorf("trapDB: cannot resolve SET clause %q", c)
		}
		item[name] = value
	}
	f.items[id] = item
	out := &dynamodb.UpdateItemOutput{}
	switch in.ReturnValues {
	case types.ReturnValueAllNew:
		out.Attributes = maps.Clone(item)
	case types.ReturnValueAllOld:
		out.Attributes = maps.Clone(old)
	case "", types.ReturnValueNone:
	default:
		return nil, fmt.Errorf("trapDB: ReturnValues %q not supported", in.ReturnValues)
	}
	return out, nil
}

func (f *trapDB) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if err := f.checkTable(in.TableName); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.queries = append(f.queries, *in)
	f.mu.Unlock()
	if in.ExclusiveStartKey != nil {
		return nil, errors.New("trapDB: returns everything on the first page")
	}
	return &dynamodb.QueryOutput{Items: f.sorted()}, nil
}

func (f *trapDB) Scan(_ context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	if err := f.checkTable(in.TableName); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.scans = append(f.scans, *in)
	f.mu.Unlock()
	if in.ExclusiveStartKey != nil {
		return nil, errors.New("trapDB: returns everything on the first page")
	}
	return &dynamodb.ScanOutput{Items: f.sorted()}, nil
}

func (f *trapDB) BatchGetItem(_ context.Context, in *dynamodb.BatchGetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	ka, ok := in.RequestItems[f.table]
	if len(in.RequestItems) != 1 || !ok {
		return nil, fmt.Errorf("trapDB: BatchGetItem for %d tables", len(in.RequestItems))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var got []map[string]types.AttributeValue
	for _, k := range ka.Keys {
		id, err := f.id(k)
		if err != nil {
			return nil, err
		}
		if item, ok := f.items[id]; ok {
			got = append(got, maps.Clone(item))
		}
	}
	return &dynamodb.BatchGetItemOutput{Responses: map[string][]map[string]types.AttributeValue{f.table: got}}, nil
}

func (f *trapDB) BatchWriteItem(_ context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	reqs, ok := in.RequestItems[f.table]
	if len(in.RequestItems) != 1 || !ok {
		return nil, fmt.Errorf("trapDB: BatchWriteItem for %d tables", len(in.RequestItems))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batchWrites++
	for _, w := range reqs {
		switch {
		case w.PutRequest != nil:
			id, err := f.id(w.PutRequest.Item)
			if err != nil {
				return nil, err
			}
			f.items[id] = maps.Clone(w.PutRequest.Item)
		case w.DeleteRequest != nil:
			id, err := f.id(w.DeleteRequest.Key)
			if err != nil {
				return nil, err
			}
			delete(f.items, id)
		}
	}
	return &dynamodb.BatchWriteItemOutput{}, nil
}
