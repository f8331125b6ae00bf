// Package repo stores Go structs in DynamoDB tables, sealing their encrypted fields on the way in and opening them on the way out.
package repo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/kmsx"

	"github.com/dynoseal/dynoseal/internal/itemsize"
)

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
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	TransactGetItems(context.Context, *dynamodb.TransactGetItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactGetItemsOutput, error)
	DeleteTable(context.Context, *dynamodb.DeleteTableInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteTableOutput, error)
	UpdateTimeToLive(context.Context, *dynamodb.UpdateTimeToLiveInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
	DescribeTimeToLive(context.Context, *dynamodb.DescribeTimeToLiveInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
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
	// IndexProjections say what the indexes T declares copy from the
	// table; see WithIndexProjection.
	IndexProjections []IndexProjection
	// TracerProvider, MeterProvider and Logger, when set, observe the
	// repository's operations; see WithTracerProvider, WithMeterProvider
	// and WithLogger.
	TracerProvider tracing.TracerProvider
	MeterProvider  metrics.MeterProvider
	Logger         *slog.Logger
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
	plan      *plan
	root      *structNode // T's encrypted values; nil when it has none
	batch     BatchOptions
	tel       *telemetry // nil without telemetry
}

// New checks T once (keys, encrypted fields, their specs, every tag) and
// returns its repository for table. A field.Encrypted without a registered
// spec fails with an error wrapping enc.ErrNoSpec that names the field; a
// tag that would be accepted and do nothing fails too.
func New[T any](table string, opts ...Option) (*Repo[T], error) {
	o := Options{Registry: enc.Default}
	for _, opt := range opts {
		opt(&o)
	}
	if o.Encryptor == nil {
		o.Encryptor = defaultEncryptor()
	}
	t := reflect.TypeFor[T]()
	if table == "" {
		return nil, fmt.Errorf("repo: %s: empty table name", t)
	}
	if o.Mode != nil && (*o.Mode < enc.ReadWrite || *o.Mode > enc.ReadOnly) {
		return nil, fmt.Errorf("repo: unknown mode %d", int(*o.Mode))
	}
	p, err := compile(t, o.Registry, o.Mode, o.IndexProjections)
	if err != nil {
		return nil, err
	}
	return &Repo[T]{table: table, client: o.Client, encryptor: o.Encryptor, plan: p, root: p.root, batch: o.Batch.withDefaults(),
		tel: newTelemetry(table, o, p.specs)}, nil
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

// Marshal seals the encrypted fields of item and returns its attributes, for
// callers who build their own requests. item itself is not changed. An item
// too large for DynamoDB once sealed fails with ErrItemTooLarge.
func (r *Repo[T]) Marshal(ctx context.Context, item T) (_ map[string]types.AttributeValue, err error) {
	ctx, sp := r.trace(ctx, "Marshal", 1)
	defer sp.end(&err)
	ms, _, err := r.marshalItems(ctx, "marshal", []T{item}, nil)
	if err != nil {
		return nil, err
	}
	return ms[0], nil
}

// marshalItems seals the new and changed values of items, with one data key
// per (key, region, context) for the whole call, and marshals them; sizes
// are the items' sizes as DynamoDB counts them. An item over DynamoDB's
// limit fails with ErrItemTooLarge: before anything is sealed when its
// plaintexts already tell, so such a write costs no KMS call. check, when
// set, sees (and may add to) each item's attributes before anything is
// sealed or measured.
func (r *Repo[T]) marshalItems(ctx context.Context, op string, items []T, check func(i int, m attrMap) error) ([]attrMap, []int, error) {
	ps, sizes, err := r.reserveItems(op, items, check)
	if err != nil {
		return nil, nil, err
	}
	defer ps.s.release()
	if err := ps.run(ctx, r.encryptor); err != nil {
		return nil, nil, err
	}
	if err := r.checkSealed(op, items, ps, sizes); err != nil {
		return nil, nil, err
	}
	return ps.items, sizes, nil
}

// reserveItems marshals items with their encrypted values reserved, to be
// sealed next, and returns the items' sizes so far. The caller releases
// the sealing.
func (r *Repo[T]) reserveItems(op string, items []T, check func(i int, m attrMap) error) (pendingSeal, []int, error) {
	copies := make([]T, len(items))
	copy(copies, items)
	s := newSealing(r.plan)
	out := make([]attrMap, len(items))
	sizes := make([]int, len(items))
	for i := range copies {
		m, err := r.reserveItem(op, s, i, &copies[i], check)
		if err != nil {
			s.release()
			return pendingSeal{}, nil, err
		}
		out[i], sizes[i] = m, itemsize.Of(m)
		if least := sizes[i] + s.pendingSize(i); least > maxItemBytes {
			err := r.tooLarge(op, r.keyOf(items[i]), m, least, s.pendingSizes(i))
			s.release()
			return pendingSeal{}, nil, err
		}
	}
	failed := func(err error) error { return r.sealFailed(op, items, err) }
	return pendingSeal{s: s, items: out, failed: failed}, sizes, nil
}

// sealFailed is the error of a write of items whose sealing failed: it
// names the item, and for a write of several, its position and the
// encryption context it takes from the item (a tenant, say), which is no
// secret: KMS logs it with every request.
func (r *Repo[T]) sealFailed(op string, items []T, err error) error {
	var sf *sealFailure
	if !errors.As(err, &sf) || sf.item >= len(items) {
		return fmt.Errorf("repo %s: %s: %w", r.table, op, err)
	}
	where := r.keyOf(items[sf.item]).String()
	if len(items) > 1 {
		where += fmt.Sprintf(" (item %d of %d%s)", sf.item, len(items), contextText(sf.context))
	}
	return fmt.Errorf("repo %s: %s %s: %w", r.table, op, where, sf.err)
}

// contextText writes an encryption context for a message: ", context
// tenant=acme".
func contextText(c map[string]string) string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(c)) {
		if i == 0 {
			b.WriteString(", encryption context ")
		} else {
			b.WriteString(" ")
		}
		b.WriteString(k + "=" + strconv.Quote(c[k]))
	}
	return b.String()
}

// reserveItem marshals item number i, an addressable copy, into s.
func (r *Repo[T]) reserveItem(op string, s *sealing, i int, item *T, check func(i int, m attrMap) error) (attrMap, error) {
	v := reflect.ValueOf(item).Elem()
	if err := s.add(i, v, r.root); err != nil {
		return nil, r.itemFailed(op, r.keyOf(*item), err)
	}
	m, err := marshalMap(v.Interface())
	if err == nil {
		err = r.reserveBeacons(s, i, v, m)
	}
	if err != nil {
		return nil, r.itemFailed(op, r.keyOf(*item), err)
	}
	r.plan.stampTTL(m, v)
	if check != nil {
		if err := check(i, m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// checkSealed adds the sealed values to sizes and checks the items against
// DynamoDB's limit again, exactly now.
func (r *Repo[T]) checkSealed(op string, items []T, ps pendingSeal, sizes []int) error {
	for i := range sizes {
		if sizes[i] += ps.s.sealedSize(i); sizes[i] > maxItemBytes {
			return r.tooLarge(op, r.keyOf(items[i]), ps.items[i], sizes[i], nil)
		}
	}
	return nil
}

func (r *Repo[T]) itemFailed(op string, k Key, err error) error {
	return &ItemError{Table: r.table, Op: op, Key: k, Err: err}
}

// marshalMap is attributevalue.MarshalMap, except that `omitempty` also
// leaves out values whose marshaler returns NULL, such as an absent
// field.Encrypted: the tag then means the same for every field type.
func marshalMap(v any) (map[string]types.AttributeValue, error) {
	return attributevalue.MarshalMapWithOptions(v, func(o *attributevalue.EncoderOptions) {
		o.OmitNullAttributeValues = true
	})
}

// Unmarshal turns attributes into an item and opens its encrypted fields.
func (r *Repo[T]) Unmarshal(ctx context.Context, m map[string]types.AttributeValue) (_ T, err error) {
	ctx, sp := r.trace(ctx, "Unmarshal", 1)
	defer sp.end(&err)
	items, errs := r.openItems(ctx, r.encryptor, "unmarshal", []attrMap{m}, false)
	return items[0], errs[0]
}

// openItems unmarshals items and opens their encrypted fields together, so
// each distinct data key among them is decrypted once (by a session: once
// for the whole session). errs[i] is the *ItemError of items[i], which is
// then the zero T. With lenient, values that do not open stay sealed and
// their items are returned (see opening.lenient).
func (r *Repo[T]) openItems(ctx context.Context, by valueOpener, op string, raw []attrMap, lenient bool) ([]T, []error) {
	items := make([]T, len(raw))
	o := newOpening(r.plan, len(raw), lenient)
	defer o.release()
	dec := attributevalue.NewDecoder()
	for i, m := range raw {
		if err := r.plan.checkSealed(m); err != nil && !lenient {
			o.failed[i] = err
			continue
		}
		if err := dec.Decode(&types.AttributeValueMemberM{Value: m}, &items[i]); err != nil {
			o.failed[i] = err
			continue
		}
		o.add(i, reflect.ValueOf(&items[i]).Elem(), m, r.root)
	}
	o.open(ctx, by)
	for i, err := range o.failed {
		if err != nil {
			var zero T
			items[i], o.failed[i] = zero, r.itemFailed(op, r.keyOfRaw(raw[i]), err)
		}
	}
	return items, slices.Clone(o.failed)
}

// keyOf returns the primary key of item, for messages.
func (r *Repo[T]) keyOf(item T) Key {
	v := reflect.ValueOf(item)
	var k Key
	if f, err := v.FieldByIndexErr(r.plan.hash.index); err == nil {
		k.Hash = f.Interface()
	}
	if r.plan.rng != nil {
		if f, err := v.FieldByIndexErr(r.plan.rng.index); err == nil {
			k.Range = f.Interface()
		}
	}
	return k
}

// keyOfRaw returns the primary key of an item as read, for messages.
func (r *Repo[T]) keyOfRaw(m attrMap) Key {
	var k Key
	for _, f := range []*attr{r.plan.hash, r.plan.rng} {
		if f == nil {
			continue
		}
		v := reflect.New(f.wrapper)
		var got any
		if attributevalue.UnmarshalMap(attrMap{f.name: m[f.name]}, v.Interface()) == nil {
			got = v.Elem().Field(0).Interface()
		}
		if f == r.plan.hash {
			k.Hash = got
		} else {
			k.Range = got
		}
	}
	return k
}
