package repo_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// fakeBatchDB answers BatchWriteItem and BatchGetItem for the "accounts"
// table from memory, checking DynamoDB's per-request limits. Hooks let a test
// leave keys unprocessed, fail calls or watch them. Other API calls panic.
type fakeBatchDB struct {
	repo.API
	t testing.TB

	mu    sync.Mutex
	items map[string]map[string]types.AttributeValue
	gets  []*dynamodb.BatchGetItemInput

	// hold reports whether DynamoDB leaves key unprocessed in call n (1-based, all operations).
	hold func(n int, key string) bool
	// fail returns an error for call n instead of processing it.
	fail func(n int) error
	// held, when set, holds every call, once counted in flight, until the
	// test sends on it (one call per send).
	held chan struct{}

	calls, writes, reads  atomic.Int32
	inFlight, maxInFlight atomic.Int32
}

func newFakeBatchDB(t testing.TB) *fakeBatchDB {
	return &fakeBatchDB{t: t, items: map[string]map[string]types.AttributeValue{}}
}

func fakeBatchKey(m map[string]types.AttributeValue) string {
	pk, _ := m["pk"].(*types.AttributeValueMemberS)
	sk, _ := m["sk"].(*types.AttributeValueMemberN)
	if pk == nil || sk == nil {
		return "?"
	}
	return pk.Value + "#" + sk.Value
}

// enter counts a call, records the concurrency and waits to be let go when
// held is set.
func (f *fakeBatchDB) enter() (n int, leave func()) {
	n = int(f.calls.Add(1))
	now := f.inFlight.Add(1)
	for {
		m := f.maxInFlight.Load()
		if now <= m || f.maxInFlight.CompareAndSwap(m, now) {
			break
		}
	}
	if f.held != nil {
		<-f.held
	}
	return n, func() { f.inFlight.Add(-1) }
}

func (f *fakeBatchDB) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	n, leave := f.enter()
	defer leave()
	f.writes.Add(1)
	reqs := in.RequestItems["accounts"]
	if len(in.RequestItems) != 1 || len(reqs) == 0 || len(reqs) > 25 {
		f.t.Errorf("BatchWriteItem with %d tables, %d requests", len(in.RequestItems), len(reqs))
		return nil, errors.New("fake: bad request")
	}
	if f.fail != nil {
		if err := f.fail(n); err != nil {
			return nil, err
		}
	}
	seen := map[string]bool{}
	out := &dynamodb.BatchWriteItemOutput{UnprocessedItems: map[string][]types.WriteRequest{}}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range reqs {
		var m map[string]types.AttributeValue
		if w.PutRequest != nil {
			m = w.PutRequest.Item
		} else {
			m = w.DeleteRequest.Key
		}
		k := fakeBatchKey(m)
		if seen[k] {
			f.t.Errorf("BatchWriteItem names %s twice", k)
			return nil, errors.New("fake: duplicate key")
		}
		seen[k] = true
		if f.hold != nil && f.hold(n, k) {
			out.UnprocessedItems["accounts"] = append(out.UnprocessedItems["accounts"], w)
			continue
		}
		if w.PutRequest != nil {
			f.items[k] = m
		} else {
			delete(f.items, k)
		}
	}
	return out, nil
}

func (f *fakeBatchDB) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	n, leave := f.enter()
	defer leave()
	f.reads.Add(1)
	ka, ok := in.RequestItems["accounts"]
	if len(in.RequestItems) != 1 || !ok || len(ka.Keys) == 0 || len(ka.Keys) > 100 {
		f.t.Errorf("BatchGetItem with %d tables, %d keys", len(in.RequestItems), len(ka.Keys))
		return nil, errors.New("fake: bad request")
	}
	if f.fail != nil {
		if err := f.fail(n); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets = append(f.gets, in)
	var keep map[string]bool
	if ka.ProjectionExpression != nil {
		keep = map[string]bool{}
		for _, name := range ka.ExpressionAttributeNames {
			keep[name] = true
		}
	}
	seen := map[string]bool{}
	out := &dynamodb.BatchGetItemOutput{Responses: map[string][]map[string]types.AttributeValue{}, UnprocessedKeys: map[string]types.KeysAndAttributes{}}
	for _, km := range ka.Keys {
		k := fakeBatchKey(km)
		if seen[k] {
			f.t.Errorf("BatchGetItem names %s twice", k)
			return nil, errors.New("fake: duplicate key")
		}
		seen[k] = true
		if f.hold != nil && f.hold(n, k) {
			u := out.UnprocessedKeys["accounts"]
			u.Keys = append(u.Keys, km)
			out.UnprocessedKeys["accounts"] = u
			continue
		}
		item, ok := f.items[k]
		if !ok {
			continue
		}
		projected := map[string]types.AttributeValue{}
		for a, v := range item {
			if keep == nil || keep[a] {
				projected[a] = v
			}
		}
		out.Responses["accounts"] = append(out.Responses["accounts"], projected)
	}
	return out, nil
}

func (f *fakeBatchDB) has(k string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.items[k]
	return ok
}

func (f *fakeBatchDB) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.items)
}

func batchRepo(t *testing.T, db *fakeBatchDB, opts ...repo.Option) (*repo.Repo[Account], *enctest.Provider) {
	t.Helper()
	base := []repo.Option{repo.WithClient(db), repo.WithBatchBackoff(time.Microsecond, time.Millisecond)}
	return newRepo(t, append(base, opts...)...)
}

func batchAccounts(n int) []Account {
	out := make([]Account, n)
	for i := range out {
		out[i] = Account{
			PK:     "A",
			SK:     i,
			Name:   "name-" + strconv.Itoa(i),
			SSN:    field.NewEncrypted(fmt.Sprintf("ssn-%03d-secret", i)),
			Card:   field.NewEncrypted(fmt.Sprintf("card-%04d-secret", i)),
			Secret: field.NewEncrypted([]byte(fmt.Sprintf("bytes-%d-secret", i))),
		}
	}
	return out
}

func batchAccountKeys(from, to int) []repo.Key {
	var out []repo.Key
	for i := from; i < to; i++ {
		out = append(out, repo.Key{Hash: "A", Range: i})
	}
	return out
}

func checkBatchAccount(t *testing.T, a Account, i int) {
	t.Helper()
	ssn, err1 := a.SSN.Value()
	card, err2 := a.Card.Value()
	secret, err3 := a.Secret.Value()
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatalf("item %d: %v", i, err)
	}
	if a.SK != i || a.Name != "name-"+strconv.Itoa(i) || ssn != fmt.Sprintf("ssn-%03d-secret", i) ||
		card != fmt.Sprintf("card-%04d-secret", i) || string(secret) != fmt.Sprintf("bytes-%d-secret", i) {
		t.Fatalf("item %d read back as SK %d name %q (fields differ)", i, a.SK, a.Name)
	}
}

func TestBatchPutSealsTheWholeCallWithOneDataKey(t *testing.T) {
	ctx := context.Background()
	db := newFakeBatchDB(t)
	r, keys := batchRepo(t, db)
	items := batchAccounts(30)
	if err := r.BatchPut(ctx, items); err != nil {
		t.Fatal(err)
	}
	if n := keys.Generates.Load(); n != 1 {
		t.Fatalf("%d GenerateDataKey calls for 30 items with 3 encrypted fields under one spec, want 1", n)
	}
	if n := db.writes.Load(); n != 2 {
		t.Fatalf("%d BatchWriteItem requests for 30 items, want 2 (25 + 5)", n)
	}
	if db.count() != 30 {
		t.Fatalf("%d items stored, want 30", db.count())
	}
	for k, item := range db.items {
		for _, attr := range []string{"ssn", "card", "secret"} {
			s, ok := item[attr].(*types.AttributeValueMemberS)
			if !ok || !enc.IsEncrypted(s.Value) || strings.Contains(s.Value, "secret") {
				t.Fatalf("%s: %s stored as %#v", k, attr, item[attr])
			}
		}
	}
	if items[0].SSN.IsSealed() {
		t.Fatal("BatchPut changed the caller's items")
	}
}

func TestBatchGetReturnsItemsInKeyOrderAndOpensWithOneDecrypt(t *testing.T) {
	ctx := context.Background()
	db := newFakeBatchDB(t)
	r, keys := batchRepo(t, db)
	if err := r.BatchPut(ctx, batchAccounts(260)); err != nil {
		t.Fatal(err)
	}
	if n := db.writes.Load(); n != 11 {
		t.Fatalf("%d BatchWriteItem requests for 260 items, want 11", n)
	}
	want := batchAccountKeys(0, 265) // 260..264 do not exist
	rand.Shuffle(len(want), func(i, j int) { want[i], want[j] = want[j], want[i] })

	got, err := r.BatchGet(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if n := db.reads.Load(); n != 3 {
		t.Fatalf("%d BatchGetItem requests for 265 keys, want 3", n)
	}
	if len(got) != 260 {
		t.Fatalf("%d items, want 260", len(got))
	}
	j := 0
	for _, k := range want {
		if k.Range.(int) >= 260 {
			continue
		}
		checkBatchAccount(t, got[j], k.Range.(int))
		j++
	}
	if n := keys.Decrypts.Load(); n != 1 {
		t.Fatalf("%d Decrypt calls for items sealed under one data key, want 1", n)
	}
	for _, in := range db.gets {
		if ka := in.RequestItems["accounts"]; ka.ConsistentRead == nil || *ka.ConsistentRead || ka.ProjectionExpression != nil {
			t.Fatalf("unasked-for read options: %+v", ka)
		}
	}
}

func TestBatchGetTakesConsistentReadAndProjection(t *testing.T) {
	ctx := context.Background()
	db := newFakeBatchDB(t)
	r, keys := batchRepo(t, db)
	if err := r.BatchPut(ctx, batchAccounts(3)); err != nil {
		t.Fatal(err)
	}
	got, err := r.BatchGet(ctx, batchAccountKeys(0, 3), repo.ConsistentRead(), repo.Project("name"))
	if err != nil {
		t.Fatal(err)
	}
	ka := db.gets[0].RequestItems["accounts"]
	if !*ka.ConsistentRead {
		t.Fatal("ConsistentRead not sent")
	}
	var names []string
	for _, n := range ka.ExpressionAttributeNames {
		names = append(names, n)
	}
	if len(names) != 3 {
		t.Fatalf("projection names %v, want name plus the key attributes", names)
	}
	if len(got) != 3 || got[2].SK != 2 || got[2].Name != "name-2" {
		t.Fatalf("got %+v", got)
	}
	if v, _ := got[2].SSN.Value(); v != "" {
		t.Fatal("projected-out encrypted field has a value")
	}
	if keys.Decrypts.Load() != 0 {
		t.Fatal("Decrypt called with no encrypted attribute read")
	}
	if _, err := r.BatchGet(ctx, batchAccountKeys(0, 3), repo.Limit(2)); err == nil || !strings.Contains(err.Error(), "BatchGet does not take a limit") {
		t.Fatalf("BatchGet with a limit: %v", err)
	}
}

func TestBatchRetriesUnprocessedUntilDone(t *testing.T) {
	ctx := context.Background()
	db := newFakeBatchDB(t)
	// The first six calls leave every third key unprocessed.
	var held atomic.Int32
	db.hold = func(n int, key string) bool {
		sk, _ := strconv.Atoi(strings.TrimPrefix(key, "A#"))
		if n <= 6 && sk%3 == 0 {
			held.Add(1)
			return true
		}
		return false
	}
	r, _ := batchRepo(t, db)

	if err := r.BatchPut(ctx, batchAccounts(60)); err != nil {
		t.Fatal(err)
	}
	if db.count() != 60 {
		t.Fatalf("%d items stored, want 60", db.count())
	}
	got, err := r.BatchGet(ctx, batchAccountKeys(0, 60))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 60 {
		t.Fatalf("%d items read, want 60", len(got))
	}
	for i, a := range got {
		checkBatchAccount(t, a, i)
	}
	if err := r.BatchDelete(ctx, batchAccountKeys(0, 60)); err != nil {
		t.Fatal(err)
	}
	if db.count() != 0 {
		t.Fatalf("%d items left after BatchDelete", db.count())
	}
	if held.Load() == 0 {
		t.Fatal("no key was ever left unprocessed")
	}
	// 3 + 1 + 3 requests without retries; the retries come on top.
	if n := db.calls.Load(); n <= 7 {
		t.Fatalf("%d calls: unprocessed keys were not sent again", n)
	}
}

func TestBatchRetriesThrottledRequests(t *testing.T) {
	db := newFakeBatchDB(t)
	db.fail = func(n int) error {
		if n <= 2 {
			return &smithy.GenericAPIError{Code: "ProvisionedThroughputExceededException", Message: "slow down"}
		}
		return nil
	}
	r, _ := batchRepo(t, db)
	if err := r.BatchPut(context.Background(), batchAccounts(10)); err != nil {
		t.Fatal(err)
	}
	if db.count() != 10 || db.calls.Load() != 3 {
		t.Fatalf("%d items after %d calls, want 10 after 3", db.count(), db.calls.Load())
	}
}

func TestBatchContextEndNamesTheUnprocessedKeys(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := newFakeBatchDB(t)
	// Keys 7 and 8 are never processed; the context ends during the first
	// call. With an hour of backoff the call only returns if the wait
	// honours the context.
	db.hold = func(n int, key string) bool {
		cancel()
		return key == "A#7" || key == "A#8"
	}
	r, _ := batchRepo(t, db, repo.WithBatchConcurrency(1), repo.WithBatchBackoff(time.Hour, time.Hour))

	err := r.BatchPut(ctx, batchAccounts(30))
	var be *repo.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want a *repo.BatchError", err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want it to wrap context.Canceled", err)
	}
	// 7 and 8 were left by the first request; 25..29 never went out.
	want := []int{7, 8, 25, 26, 27, 28, 29}
	if len(be.Unprocessed) != len(want) || be.Total != 30 || be.Op != "BatchPut" {
		t.Fatalf("BatchError %+v, want keys %v of 30", be, want)
	}
	for i, k := range be.Unprocessed {
		if k.Hash != "A" || k.Range != want[i] {
			t.Fatalf("unprocessed %v, want ranges %v", be.Unprocessed, want)
		}
		if db.has(fmt.Sprintf("A#%d", want[i])) {
			t.Fatalf("%v is listed as unprocessed but was written", k)
		}
	}
	if db.count() != 23 {
		t.Fatalf("%d items written, want 23", db.count())
	}
	if !strings.Contains(err.Error(), `{Hash:"A" Range:7}`) {
		t.Fatalf("message does not name the keys: %v", err)
	}
}

func TestBatchFailedRequestStopsTheCallAndNamesWhatWasNotWritten(t *testing.T) {
	db := newFakeBatchDB(t)
	cause := &smithy.GenericAPIError{Code: "ValidationException", Message: "nope"}
	db.fail = func(n int) error {
		if n == 2 {
			return cause
		}
		return nil
	}
	r, _ := batchRepo(t, db, repo.WithBatchConcurrency(1))
	err := r.BatchPut(context.Background(), batchAccounts(60))
	var be *repo.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v", err)
	}
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "ValidationException" {
		t.Fatalf("cause not kept: %v", err)
	}
	if len(be.Unprocessed) != 35 || be.Unprocessed[0].Range != 25 || be.Unprocessed[34].Range != 59 {
		t.Fatalf("unprocessed %v, want ranges 25..59", be.Unprocessed)
	}
	if db.count() != 25 || db.calls.Load() != 2 {
		t.Fatalf("%d items after %d calls; want 25 after 2 (no request after the failure)", db.count(), db.calls.Load())
	}
}

func TestBatchRejectsDuplicateKeysBeforeAnyRequest(t *testing.T) {
	ctx := context.Background()
	db := newFakeBatchDB(t)
	r, keys := batchRepo(t, db)
	items := batchAccounts(5)
	items[4].SK = 2
	err := r.BatchPut(ctx, items)
	if !errors.Is(err, repo.ErrDuplicateKey) || !strings.Contains(err.Error(), `{Hash:"A" Range:2}`) {
		t.Fatalf("BatchPut: %v", err)
	}
	dup := append(batchAccountKeys(0, 5), repo.Key{Hash: "A", Range: 3})
	if _, err := r.BatchGet(ctx, dup); !errors.Is(err, repo.ErrDuplicateKey) || !strings.Contains(err.Error(), `{Hash:"A" Range:3}`) {
		t.Fatalf("BatchGet: %v", err)
	}
	// An int and a float of the same value are one DynamoDB number.
	if err := r.BatchDelete(ctx, []repo.Key{{Hash: "A", Range: 1}, {Hash: "A", Range: 1.0}}); !errors.Is(err, repo.ErrDuplicateKey) {
		t.Fatalf("BatchDelete: %v", err)
	}
	if db.calls.Load() != 0 || keys.Generates.Load() != 0 {
		t.Fatalf("%d DynamoDB and %d KMS calls before rejecting duplicates", db.calls.Load(), keys.Generates.Load())
	}
}

func TestBatchPutWritesNothingWhenSealingFails(t *testing.T) {
	ctx := context.Background()
	db := newFakeBatchDB(t)
	r, keys := batchRepo(t, db)
	keys.Fail = func(op string, _ enc.KeyRef) error { return enc.ErrAccessDenied }
	if err := r.BatchPut(ctx, batchAccounts(40)); !errors.Is(err, enc.ErrAccessDenied) {
		t.Fatalf("err = %v", err)
	}
	ro, _ := batchRepo(t, db, repo.WithMode(enc.ReadOnly))
	if err := ro.BatchPut(ctx, batchAccounts(40)); !errors.Is(err, enc.ErrReadOnly) {
		t.Fatalf("ReadOnly: err = %v", err)
	}
	if db.calls.Load() != 0 {
		t.Fatalf("%d requests sent after sealing failed", db.calls.Load())
	}
}

func TestBatchPutRejectsItemsOver400KB(t *testing.T) {
	db := newFakeBatchDB(t)
	r, _ := batchRepo(t, db)
	items := batchAccounts(3)
	items[1].Name = strings.Repeat("x", 400<<10)
	err := r.BatchPut(context.Background(), items)
	if !errors.Is(err, repo.ErrItemTooLarge) || !strings.Contains(err.Error(), `{Hash:"A" Range:1}`) {
		t.Fatalf("err = %v", err)
	}
	if db.calls.Load() != 0 {
		t.Fatal("a request was sent")
	}
}

func TestBatchGetReportsKeysWhoseItemsCannotBeOpened(t *testing.T) {
	ctx := context.Background()
	db := newFakeBatchDB(t)
	r, keys := batchRepo(t, db)
	if err := r.BatchPut(ctx, batchAccounts(5)); err != nil {
		t.Fatal(err)
	}
	keys.Fail = func(op string, _ enc.KeyRef) error { return enc.ErrAccessDenied }
	got, err := r.BatchGet(ctx, batchAccountKeys(0, 8)) // 5..7 have no item
	var be *repo.BatchError
	if len(got) != 0 || !errors.As(err, &be) || !errors.Is(err, enc.ErrAccessDenied) {
		t.Fatalf("got %d items, err %v", len(got), err)
	}
	if fmt.Sprint(be.Unprocessed) != fmt.Sprint(batchAccountKeys(0, 5)) || be.Total != 8 {
		t.Fatalf("unprocessed %v of %d, want the five items read but not opened", be.Unprocessed, be.Total)
	}
	if _, ok := enc.AsError(err); !ok {
		t.Fatalf("no *enc.Error in %v", err)
	}
}

func TestBatchCallsWithNothingToDoSendNothing(t *testing.T) {
	ctx := context.Background()
	db := newFakeBatchDB(t)
	r, _ := batchRepo(t, db)
	got, err := r.BatchGet(ctx, nil)
	if err != nil || got != nil {
		t.Fatal(got, err)
	}
	if err := errors.Join(r.BatchPut(ctx, nil), r.BatchDelete(ctx, nil)); err != nil {
		t.Fatal(err)
	}
	if db.calls.Load() != 0 {
		t.Fatal("a request was sent")
	}
}

// BenchmarkBatchPutGet1000 measures the library's own work for 1,000 items
// with 3 encrypted fields each (sealing, marshalling, splitting, matching,
// opening) against an in-memory table and key provider.
func BenchmarkBatchPutGet1000(b *testing.B) {
	ctx := context.Background()
	items := batchAccounts(1000)
	keys := batchAccountKeys(0, 1000)
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	r, err := repo.New[Account]("accounts", repo.WithRegistry(reg), repo.WithEncryptor(enc.New(enctest.New())), repo.WithClient(newFakeBatchDB(b)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := r.BatchPut(ctx, items); err != nil {
			b.Fatal(err)
		}
		got, err := r.BatchGet(ctx, keys)
		if err != nil || len(got) != 1000 {
			b.Fatal(len(got), err)
		}
	}
}
