package repo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/internal/batchrun"

	"github.com/dynoseal/dynoseal/internal/itemsize"
)

// ErrDuplicateKey is returned when one batch call names the same key twice.
// DynamoDB rejects such a request as a whole, so the call is refused before
// anything is sealed or sent.
var ErrDuplicateKey = errors.New("dynoseal: duplicate key in batch")

// BatchOptions tune BatchGet, BatchPut and BatchDelete.
type BatchOptions struct {
	// Concurrency bounds the requests one call has in flight. Default 4.
	Concurrency int
	// BaseDelay and MaxDelay shape the wait before DynamoDB's unprocessed
	// items (or a throttled request) are sent again: the n-th retry of a
	// request waits a random time between 0 and min(MaxDelay, BaseDelay·2ⁿ).
	// Defaults 50 ms and 5 s.
	BaseDelay, MaxDelay time.Duration
}

// WithBatchConcurrency bounds the requests one batch call has in flight.
func WithBatchConcurrency(n int) Option { return func(o *Options) { o.Batch.Concurrency = n } }

// WithBatchBackoff sets the backoff before unprocessed items are retried:
// the n-th retry waits a random time between 0 and min(max, base·2ⁿ).
func WithBatchBackoff(base, max time.Duration) Option {
	return func(o *Options) { o.Batch.BaseDelay, o.Batch.MaxDelay = base, max }
}

func (o BatchOptions) limits() batchrun.Limits {
	return batchrun.Limits{Concurrency: o.Concurrency, BaseDelay: o.BaseDelay, MaxDelay: o.MaxDelay}
}

func (o BatchOptions) withDefaults() BatchOptions {
	if o.Concurrency < 1 {
		o.Concurrency = 4
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = 50 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 5 * time.Second
	}
	o.MaxDelay = max(o.MaxDelay, o.BaseDelay)
	return o
}

// BatchError reports the keys a batch call did not process: items not
// written (BatchPut), not deleted (BatchDelete) or not read (BatchGet). Match
// it with errors.As; Err, the cause, also matches with errors.Is (e.g.
// context.DeadlineExceeded, or the SDK's error for a failed request).
//
// A key whose request was cut short by the context may or may not have been
// written; puts and deletes are idempotent, so sending them again is safe.
type BatchError struct {
	Op    string // "BatchGet", "BatchPut" or "BatchDelete"
	Table string
	// Unprocessed lists the keys not processed, in the order of the call's input.
	Unprocessed []Key
	// Total is the number of keys in the call.
	Total int
	Err   error
}

func (e *BatchError) Error() string {
	const shown = 10
	var b strings.Builder
	fmt.Fprintf(&b, "repo %s: %s: %d of %d keys not processed: ", e.Table, e.Op, len(e.Unprocessed), e.Total)
	for i, k := range e.Unprocessed[:min(shown, len(e.Unprocessed))] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k.String())
	}
	if n := len(e.Unprocessed) - shown; n > 0 {
		fmt.Fprintf(&b, " and %d more", n)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *BatchError) Unwrap() error { return e.Err }

// BatchPut writes items, replacing any items with the same keys, in as many
// BatchWriteItem requests as DynamoDB's limits need (25 items, 16 MB), at
// most Concurrency at once. Items DynamoDB leaves unprocessed are sent again
// with backoff until all are written or ctx ends.
//
// All encrypted values of the call are sealed before anything is sent, with
// one data key per spec for the whole call; if sealing fails, nothing is
// written. Two items with the same key fail with ErrDuplicateKey and an item
// over 400 KB with ErrItemTooLarge, also before anything is sent. Items that
// could not be written are named in a *BatchError; the others are written.
// Items with a `repo:"version"` field are refused: a batch cannot check
// versions (use Transact).
func (r *Repo[T]) BatchPut(ctx context.Context, items []T) (err error) {
	ctx, sp := r.trace(ctx, "BatchPut", len(items))
	defer sp.end(&err)
	db, err := r.batchPutClient(len(items))
	if db == nil {
		return err
	}
	ids := make([]string, len(items))
	seen := make(map[string]int, len(items))
	// Runs on each item's attributes before anything is sealed.
	unique := func(i int, m attrMap) error {
		id, err := r.keyID(m)
		if err != nil {
			return fmt.Errorf("repo %s: BatchPut: item %d %s: %w", r.table, i, r.keyOf(items[i]), err)
		}
		if j, dup := seen[id]; dup {
			return fmt.Errorf("repo %s: BatchPut: key %s appears at %d and %d: %w", r.table, r.keyOf(items[i]), j, i, ErrDuplicateKey)
		}
		seen[id], ids[i] = i, id
		return nil
	}
	ms, sizes, err := r.marshalItems(ctx, "BatchPut", items, unique)
	if err != nil {
		return err
	}
	reqs := make([]types.WriteRequest, len(ms))
	for i, m := range ms {
		reqs[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: m}}
	}
	return r.write(ctx, db, "BatchPut", func(i int) Key { return r.keyOf(items[i]) }, ids, sizes, reqs)
}

// batchPutClient is the client for a BatchPut of n items; nil when there
// is nothing to do (n is 0) or BatchPut cannot be done (then err says why).
func (r *Repo[T]) batchPutClient(n int) (API, error) {
	if v := r.plan.version; v != nil {
		return nil, fmt.Errorf("repo %s: BatchPut: %s is versioned (field %s): BatchWriteItem takes no condition, so it could overwrite newer versions; write versioned items with Put or Transact", r.table, r.plan.typ, v.goName)
	}
	if n == 0 {
		return nil, nil
	}
	return r.db()
}

// BatchDelete removes the items with keys, in requests of at most 25 keys,
// at most Concurrency at once, retrying unprocessed keys with backoff until
// all are deleted or ctx ends. Missing items are not an error. Duplicate keys
// fail with ErrDuplicateKey before anything is sent; keys not deleted are
// named in a *BatchError.
func (r *Repo[T]) BatchDelete(ctx context.Context, keys []Key) (err error) {
	ctx, sp := r.trace(ctx, "BatchDelete", len(keys))
	defer sp.end(&err)
	if len(keys) == 0 {
		return nil
	}
	db, err := r.db()
	if err != nil {
		return err
	}
	keyMaps, err := r.keyMaps("BatchDelete", keys)
	if err != nil {
		return err
	}
	reqs := make([]types.WriteRequest, len(keys))
	ids := make([]string, len(keys))
	sizes := make([]int, len(keys))
	for i, km := range keyMaps {
		ids[i], _ = r.keyID(km) // keyMaps has checked it
		sizes[i] = itemsize.Of(km)
		reqs[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: km}}
	}
	return r.write(ctx, db, "BatchDelete", func(i int) Key { return keys[i] }, ids, sizes, reqs)
}

// write sends reqs with BatchWriteItem; ids are their canonical keys.
func (r *Repo[T]) write(ctx context.Context, db API, op string, keyAt func(int) Key, ids []string, sizes []int, reqs []types.WriteRequest) error {
	send := func(ctx context.Context, idx []int) ([]int, error) {
		batch := make([]types.WriteRequest, len(idx))
		for j, i := range idx {
			batch[j] = reqs[i]
		}
		out, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{r.table: batch}})
		if err != nil {
			return nil, err
		}
		var left []attrMap
		for _, ws := range out.UnprocessedItems {
			for _, w := range ws {
				switch {
				case w.PutRequest != nil:
					left = append(left, w.PutRequest.Item)
				case w.DeleteRequest != nil:
					left = append(left, w.DeleteRequest.Key)
				}
			}
		}
		return r.match(idx, ids, left)
	}
	left, cause := batchrun.Run(ctx, r.batchLimits(op), batchrun.Chunk(sizes, maxWritesPerRequest, maxRequestBytes), send)
	if len(left) == 0 {
		return nil
	}
	return &BatchError{Op: op, Table: r.table, Unprocessed: pick(keyAt, left), Total: len(reqs), Err: cause}
}

// BatchGet reads the items with keys and returns those that exist, in the
// order of keys; keys without an item are simply absent from the result. It
// takes ConsistentRead, Project (the key attributes are always returned,
// to match items to keys) and SkipExpired (expired items count as missing
// and are not opened).
//
// Keys are sent in requests of at most 100, at most Concurrency at once;
// keys DynamoDB leaves unprocessed (e.g. past its 16 MB response limit) are
// sent again with backoff until all are read or ctx ends. Then the encrypted
// values of all items are opened together: one Decrypt per distinct data key
// for the whole call.
//
// Duplicate keys fail with ErrDuplicateKey before anything is sent. When
// some keys could not be read, BatchGet returns the items it did read
// together with a *BatchError naming the others. Items that were read but
// cannot be opened (a damaged value, KMS refusing a Decrypt, ctx ending
// first) are left out too and named in the *BatchError, whose Err joins an
// *ItemError for each; the items that opened are returned.
func (r *Repo[T]) BatchGet(ctx context.Context, keys []Key, opts ...ReadOption) (_ []T, err error) {
	ctx, sp := r.trace(ctx, "BatchGet", len(keys))
	defer sp.end(&err)
	o, now, err := r.reading("BatchGet", knobProject|knobSkipExpired, opts)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, nil
	}
	db, err := r.db()
	if err != nil {
		return nil, err
	}
	keyMaps, err := r.keyMaps("BatchGet", keys)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(keys))
	sizes := make([]int, len(keys))
	for i, km := range keyMaps {
		ids[i], _ = r.keyID(km) // keyMaps has checked it
		sizes[i] = itemsize.Of(km)
	}
	request := types.KeysAndAttributes{ConsistentRead: aws.Bool(o.ConsistentRead)}
	// The key attributes always come back, to match items to keys.
	if request.ProjectionExpression, request.ExpressionAttributeNames, err = r.projectionOnly("BatchGet", o.Projection, r.plan.readTTL(now, r.plan.keyNames())); err != nil {
		return nil, err
	}

	// found[i] is the item of keys[i]; requests in flight fill distinct slots.
	found := make([]attrMap, len(keys))
	send := func(ctx context.Context, idx []int) ([]int, error) {
		return r.batchGetRequest(ctx, db, request, keyMaps, ids, idx, found)
	}
	left, cause := batchrun.Run(ctx, r.batchLimits("BatchGet"), batchrun.Chunk(sizes, maxKeysPerRequest, maxRequestBytes), send)
	items, unopened, failed := r.openFound(ctx, found, now)
	left = append(left, unopened...)
	cause = joinErrors([]error{cause, failed})
	if len(left) > 0 {
		slices.Sort(left)
		keyAt := func(i int) Key { return keys[i] }
		return items, &BatchError{Op: "BatchGet", Table: r.table, Unprocessed: pick(keyAt, left), Total: len(keys), Err: cause}
	}
	return items, nil
}

// batchGetRequest sends one BatchGetItem for the keys idx, stores what it
// returns in found and returns the keys left unprocessed.
func (r *Repo[T]) batchGetRequest(ctx context.Context, db API, request types.KeysAndAttributes, keyMaps []attrMap, ids []string, idx []int, found []attrMap) ([]int, error) {
	request.Keys = make([]attrMap, len(idx))
	for j, i := range idx {
		request.Keys[j] = keyMaps[i]
	}
	out, err := db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{r.table: request}})
	if err != nil {
		return nil, err
	}
	got := out.Responses[r.table]
	at, err := r.match(idx, ids, got)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		found[i] = got[j]
	}
	return r.match(idx, ids, out.UnprocessedKeys[r.table].Keys)
}

// openFound opens the items BatchGet read, in the order of its keys, and
// returns those that opened, the positions of those that did not and why.
// Items expired at now count as missing, and are not opened.
func (r *Repo[T]) openFound(ctx context.Context, found []attrMap, now expiry) (items []T, unopened []int, why error) {
	var raw []attrMap
	var read []int
	for i, m := range found {
		if m != nil && !r.plan.expired(m, now) {
			raw = append(raw, m)
			read = append(read, i)
		}
	}
	opened, errs := r.openItems(ctx, r.encryptor, "batch get", raw, false)
	var failed []error
	for n, err := range errs {
		if err != nil {
			unopened = append(unopened, read[n])
			failed = append(failed, err)
			continue
		}
		items = append(items, opened[n])
	}
	return items, unopened, firstErrors(failed, 3)
}

// keyMaps marshals keys and rejects the call if two of them are equal.
func (r *Repo[T]) keyMaps(op string, keys []Key) ([]attrMap, error) {
	out := make([]attrMap, len(keys))
	seen := make(map[string]int, len(keys))
	for i, k := range keys {
		km, err := r.keyMap(k)
		if err != nil {
			return nil, fmt.Errorf("repo %s: %s: key %d: %w", r.table, op, i, err)
		}
		id, err := r.keyID(km)
		if err != nil {
			return nil, fmt.Errorf("repo %s: %s: key %d %s: %w", r.table, op, i, k.String(), err)
		}
		if j, dup := seen[id]; dup {
			return nil, fmt.Errorf("repo %s: %s: key %s appears at %d and %d: %w", r.table, op, k.String(), j, i, ErrDuplicateKey)
		}
		seen[id] = i
		out[i] = km
	}
	return out, nil
}

// match returns the positions in idx of the keys of ms, which DynamoDB
// returned for a request of the keys idx. A key that was not requested is
// an error: the response cannot be trusted to account for the request.
func (r *Repo[T]) match(idx []int, ids []string, ms []attrMap) ([]int, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	pos := make(map[string]int, len(idx))
	for _, i := range idx {
		pos[ids[i]] = i
	}
	out := make([]int, len(ms))
	for j, m := range ms {
		id, err := r.keyID(m)
		if err != nil {
			return nil, fmt.Errorf("DynamoDB response: %w", err)
		}
		i, ok := pos[id]
		if !ok {
			return nil, errors.New("DynamoDB response names a key that was not requested")
		}
		out[j] = i
	}
	return out, nil
}

func pick(keyAt func(int) Key, idx []int) []Key {
	out := make([]Key, len(idx))
	for j, i := range idx {
		out[j] = keyAt(i)
	}
	return out
}
