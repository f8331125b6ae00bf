// Package repo stores Go structs in DynamoDB tables, sealing their encrypted fields on the way in and opening them on the way out.
package repo

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/kmsx"
)

// ErrNotFound is returned by Get when no item has the key.
var ErrNotFound = errors.New("dynoseal: item not found")

// API is the part of *dynamodb.Client that repositories use.
type API interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	CreateTable(context.Context, *dynamodb.CreateTableInput, ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// Options configure a repository.
type Options struct {
	// Client defaults to a client from the default AWS configuration,
	// loaded on first use and shared by every repository without a client.
	Client API
	// Encryptor defaults to one over kmsx.New(), shared likewise.
	Encryptor *enc.Encryptor
	// Registry resolves `enc` tags. Defaults to enc.Default.
	Registry *enc.Registry
	// Mode, when set, replaces the mode of every spec the repository uses.
	Mode *enc.Mode
	// Batch tunes BatchGet, BatchPut and BatchDelete.
	Batch BatchOptions
}

// Option changes [Options].
type Option func(*Options)

// WithClient sets the DynamoDB client.
func WithClient(c API) Option { return func(o *Options) { o.Client = c } }

// WithEncryptor sets the encryptor; share one to pool its statistics and caches.
func WithEncryptor(e *enc.Encryptor) Option { return func(o *Options) { o.Encryptor = e } }

// WithRegistry resolves `enc` tags in r instead of enc.Default.
func WithRegistry(r *enc.Registry) Option { return func(o *Options) { o.Registry = r } }

// WithMode forces one mode on every encrypted field of the repository, so one
// item type can be written by a WriteOnly service and read by a ReadOnly one.
func WithMode(m enc.Mode) Option { return func(o *Options) { o.Mode = &m } }

var (
	defaultClient = sync.OnceValues(func() (API, error) {
		cfg, err := config.LoadDefaultConfig(context.Background())
		if err != nil {
			return nil, fmt.Errorf("dynoseal: load AWS config: %w", err)
		}
		return dynamodb.NewFromConfig(cfg), nil
	})
	defaultEncryptor = sync.OnceValue(func() *enc.Encryptor { return enc.New(kmsx.New()) })
)

// Repo stores items of type T, a struct, in one table. It is safe for concurrent use.
type Repo[T any] struct {
	table     string
	client    API
	encryptor *enc.Encryptor
	plans     map[reflect.Type]*cellPlan
	item      *itemPlan
	hash, rng *keyField
	batch     BatchOptions
	// openNeeds: see openingNeeds.
	openNeeds map[string][]string
}

// New checks T once (keys, encrypted fields, their specs) and returns its
// repository for table. A field.Encrypted without a registered spec fails
// with an error wrapping enc.ErrNoSpec that names the field.
func New[T any](table string, opts ...Option) (*Repo[T], error) {
	o := Options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.Registry == nil {
		o.Registry = enc.Default
	}
	if o.Encryptor == nil {
		o.Encryptor = defaultEncryptor()
	}
	t := reflect.TypeFor[T]()
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("repo: item type %s is not a struct", t)
	}
	if table == "" {
		return nil, fmt.Errorf("repo: %s: empty table name", t)
	}
	hash, rng, err := keyFields(t)
	if err != nil {
		return nil, err
	}
	p := planner{registry: o.Registry, mode: o.Mode, plans: map[reflect.Type]*cellPlan{}}
	if _, err := p.plan(t, t.Name()); err != nil {
		return nil, err
	}
	if o.Mode != nil && (*o.Mode < enc.ReadWrite || *o.Mode > enc.ReadOnly) {
		return nil, fmt.Errorf("repo: unknown mode %d", int(*o.Mode))
	}
	item, err := newItemPlan(t, hash, rng, p.plans)
	if err != nil {
		return nil, err
	}
	return &Repo[T]{table: table, client: o.Client, encryptor: o.Encryptor, plans: p.plans, item: item, hash: hash, rng: rng,
		batch: o.Batch.withDefaults(), openNeeds: openingNeeds(t, p.plans, hash, rng)}, nil
}

// Table returns the table name.
func (r *Repo[T]) Table() string { return r.table }

// Encryptor returns the encryptor, e.g. to read its Stats.
func (r *Repo[T]) Encryptor() *enc.Encryptor { return r.encryptor }

func (r *Repo[T]) db() (API, error) {
	if r.client != nil {
		return r.client, nil
	}
	return defaultClient()
}

// Key is an item's primary key. Range is nil for tables without a sort key.
type Key struct {
	Hash  any
	Range any
}

// String writes k the way it is written in Go, so it can be found in code
// and logs. Keys are never encrypted, so they may appear in errors.
func (k Key) String() string {
	if k.Range == nil {
		return "{Hash:" + formatKeyValue(k.Hash) + "}"
	}
	return "{Hash:" + formatKeyValue(k.Hash) + " Range:" + formatKeyValue(k.Range) + "}"
}

func formatKeyValue(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case []byte:
		return fmt.Sprintf("0x%x", v)
	}
	return fmt.Sprint(v)
}

func (r *Repo[T]) keyMap(k Key) (map[string]types.AttributeValue, error) {
	if k.Hash == nil {
		return nil, fmt.Errorf("repo %s: key has no hash value", r.table)
	}
	hv, err := r.hash.marshal(k.Hash)
	if err != nil {
		return nil, fmt.Errorf("repo %s: hash key %s: %w", r.table, r.hash.name, err)
	}
	m := map[string]types.AttributeValue{r.hash.name: hv}
	switch {
	case r.rng == nil && k.Range != nil:
		return nil, fmt.Errorf("repo %s: table has no range key but the key has one", r.table)
	case r.rng != nil && k.Range == nil:
		return nil, fmt.Errorf("repo %s: key lacks the range key %s", r.table, r.rng.name)
	case r.rng != nil:
		rv, err := r.rng.marshal(k.Range)
		if err != nil {
			return nil, fmt.Errorf("repo %s: range key %s: %w", r.table, r.rng.name, err)
		}
		m[r.rng.name] = rv
	}
	return m, nil
}

// Marshal seals the encrypted fields of item and returns its attributes, for
// callers who build their own requests. item itself is not changed.
func (r *Repo[T]) Marshal(ctx context.Context, item T) (map[string]types.AttributeValue, error) {
	items, err := r.marshalAll(ctx, []T{item})
	if err != nil {
		return nil, err
	}
	return items[0], nil
}

// marshalAll seals every item's pending values with one data key per spec
// for the whole call, then marshals them.
func (r *Repo[T]) marshalAll(ctx context.Context, items []T) ([]map[string]types.AttributeValue, error) {
	copies := make([]T, len(items))
	copy(copies, items)
	s := sealer{encryptor: r.encryptor, plans: r.plans, item: r.item}
	for i := range copies {
		if err := s.add(reflect.ValueOf(&copies[i]).Elem()); err != nil {
			return nil, err
		}
	}
	if err := s.seal(ctx); err != nil {
		return nil, err
	}
	out := make([]map[string]types.AttributeValue, len(copies))
	for i := range copies {
		m, err := marshalMap(copies[i])
		if err != nil {
			return nil, fmt.Errorf("repo %s: marshal: %w", r.table, err)
		}
		out[i] = m
	}
	return out, nil
}

// Unmarshal turns attributes into an item and opens its encrypted fields.
func (r *Repo[T]) Unmarshal(ctx context.Context, m map[string]types.AttributeValue) (T, error) {
	items, err := r.openItems(ctx, r.encryptor, "unmarshal", []attrMap{m})
	if err != nil {
		var zero T
		return zero, err
	}
	return items[0], nil
}

// openItems unmarshals items and opens their encrypted fields together, so
// each distinct data key among them is decrypted once (by a session: once
// for the whole session). Errors name the table and op.
func (r *Repo[T]) openItems(ctx context.Context, by valueOpener, op string, items []attrMap) ([]T, error) {
	ts, err := r.unmarshalWith(ctx, by, items)
	if _, isEnc := enc.AsError(err); isEnc {
		// Unmarshal errors already name the table; sealing errors do not.
		return nil, fmt.Errorf("repo %s: %s: %w", r.table, op, err)
	}
	return ts, err
}

// unmarshalAll is unmarshalWith the repository's encryptor.
func (r *Repo[T]) unmarshalAll(ctx context.Context, ms []attrMap) ([]T, error) {
	return r.unmarshalWith(ctx, r.encryptor, ms)
}

// valueOpener opens sealed values: an *enc.Encryptor for one call, an
// *enc.Session for the calls of one iteration.
type valueOpener interface {
	Open(ctx context.Context, reqs []enc.OpenRequest) ([][]byte, error)
}

func (r *Repo[T]) unmarshalWith(ctx context.Context, by valueOpener, ms []attrMap) ([]T, error) {
	items := make([]T, len(ms))
	o := opener{by: by, plans: r.plans, item: r.item}
	for i, m := range ms {
		if err := attributevalue.UnmarshalMap(m, &items[i]); err != nil {
			return nil, fmt.Errorf("repo %s: unmarshal: %w", r.table, err)
		}
		if err := o.add(reflect.ValueOf(&items[i]).Elem(), m); err != nil {
			return nil, err
		}
	}
	if err := o.open(ctx); err != nil {
		return nil, err
	}
	return items, nil
}

// Put writes item, replacing any item with the same key. Its new or changed
// encrypted values are sealed first; if sealing fails nothing is written.
// It takes If, IfNotExists, IfExists and ReturnCurrentOnFailure; a condition
// that does not hold gives a *ConditionFailedError[T].
func (r *Repo[T]) Put(ctx context.Context, item T, opts ...WriteOption) error {
	o, err := writeOptions("Put", 0, opts)
	if err != nil {
		return err
	}
	cond, err := r.condition("put", o)
	if err != nil {
		return err
	}
	db, err := r.db()
	if err != nil {
		return err
	}
	av, err := r.Marshal(ctx, item)
	if err != nil {
		return err
	}
	k := r.keyOf(item)
	if err := r.checkItemSize("put", k, av); err != nil {
		return err
	}
	in := &dynamodb.PutItemInput{TableName: aws.String(r.table), Item: av, ReturnValuesOnConditionCheckFailure: onFailure(o)}
	if cond != nil {
		in.ConditionExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues = cond.expr, cond.names, cond.values
	}
	if _, err := db.PutItem(ctx, in); err != nil {
		return r.writeError(ctx, "put", k, o, err)
	}
	return nil
}

// Get reads the item with key k and opens its encrypted fields. A missing
// item gives ErrNotFound. It takes ConsistentRead and Project.
func (r *Repo[T]) Get(ctx context.Context, k Key, opts ...ReadOption) (T, error) {
	var zero T
	o, err := readOptions("Get", 0, opts)
	if err != nil {
		return zero, err
	}
	db, err := r.db()
	if err != nil {
		return zero, err
	}
	km, err := r.keyMap(k)
	if err != nil {
		return zero, err
	}
	in := &dynamodb.GetItemInput{TableName: aws.String(r.table), Key: km, ConsistentRead: aws.Bool(o.ConsistentRead)}
	if in.ProjectionExpression, in.ExpressionAttributeNames, err = r.projectionOnly("get", o.Projection, nil); err != nil {
		return zero, err
	}
	out, err := db.GetItem(ctx, in)
	if err != nil {
		return zero, fmt.Errorf("repo %s: get: %w", r.table, err)
	}
	if out.Item == nil {
		return zero, fmt.Errorf("repo %s: get %s: %w", r.table, k, ErrNotFound)
	}
	items, err := r.openItems(ctx, r.encryptor, "get "+k.String(), []attrMap{out.Item})
	if err != nil {
		return zero, err
	}
	return items[0], nil
}

// Delete removes the item with key k. Deleting a missing item is not an
// error unless IfExists says so. It takes If, IfExists and
// ReturnCurrentOnFailure; a condition that does not hold gives a
// *ConditionFailedError[T]. DeleteReturning also returns the item.
func (r *Repo[T]) Delete(ctx context.Context, k Key, opts ...WriteOption) error {
	o, err := writeOptions("Delete", 0, opts)
	if err != nil {
		return err
	}
	_, err = r.deleteItem(ctx, k, o, "")
	return err
}

// CreateTable creates the repository's table with on-demand billing and the
// key schema of T, and waits until it is active. Change the request with fns
// (e.g. to add indexes).
func (r *Repo[T]) CreateTable(ctx context.Context, fns ...func(*dynamodb.CreateTableInput)) error {
	db, err := r.db()
	if err != nil {
		return err
	}
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(r.table),
		BillingMode: types.BillingModePayPerRequest,
	}
	for _, k := range []*keyField{r.hash, r.rng} {
		if k == nil {
			continue
		}
		at, err := k.attributeType()
		if err != nil {
			return fmt.Errorf("repo %s: key %s: %w", r.table, k.name, err)
		}
		kt := types.KeyTypeHash
		if k == r.rng {
			kt = types.KeyTypeRange
		}
		in.KeySchema = append(in.KeySchema, types.KeySchemaElement{AttributeName: aws.String(k.name), KeyType: kt})
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(k.name), AttributeType: at})
	}
	for _, fn := range fns {
		fn(in)
	}
	if _, err := db.CreateTable(ctx, in); err != nil {
		return fmt.Errorf("repo %s: create table: %w", r.table, err)
	}
	w := dynamodb.NewTableExistsWaiter(db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = 2 * time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(r.table)}, 2*time.Minute); err != nil {
		return fmt.Errorf("repo %s: wait for table: %w", r.table, err)
	}
	return nil
}

func scalarType(t reflect.Type) (types.ScalarAttributeType, error) {
	switch t.Kind() {
	case reflect.String:
		return types.ScalarAttributeTypeS, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return types.ScalarAttributeTypeN, nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return types.ScalarAttributeTypeB, nil
		}
	}
	return "", fmt.Errorf("type %s cannot be a key (want a string, number or []byte)", t)
}

// marshalMap is attributevalue.MarshalMap, except that `omitempty` also
// leaves out values whose marshaler returns NULL, such as an absent
// field.Encrypted: the tag then means the same for every field type.
func marshalMap(v any) (map[string]types.AttributeValue, error) {
	return attributevalue.MarshalMapWithOptions(v, func(o *attributevalue.EncoderOptions) {
		o.OmitNullAttributeValues = true
	})
}

// checkItemSize refuses an item DynamoDB would refuse, naming its largest
// attribute: sealing makes a value about a third larger than its plaintext,
// which is easy to overlook.
func (r *Repo[T]) checkItemSize(op string, k Key, av map[string]types.AttributeValue) error {
	size := itemSize(av)
	if size <= maxItemBytes {
		return nil
	}
	largest, largestSize := "", 0
	for name, v := range av {
		if n := len(name) + valueSize(v); n > largestSize {
			largest, largestSize = name, n
		}
	}
	return fmt.Errorf("repo %s: %s %s: item is %d bytes, largest attribute %q is %d bytes: %w", r.table, op, k, size, largest, largestSize, ErrItemTooLarge)
}
