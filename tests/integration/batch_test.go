package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/dynoseal/dynoseal/dynotest"
	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// batchCustomer has a composite key and three encrypted fields under one spec.
type batchCustomer struct {
	Tenant string                  `dynamodbav:"tenant" repo:"hash"`
	ID     int                     `dynamodbav:"id" repo:"range"`
	Name   string                  `dynamodbav:"name"`
	Card   field.Encrypted[string] `dynamodbav:"card" enc:"pii"`
	SSN    field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
	Notes  field.Encrypted[[]byte] `dynamodbav:"notes" enc:"pii"`
}

// Every plaintext of an encrypted field contains this marker, so a raw item
// can be searched for any of them.
const batchPlainMarker = "PLAIN"

func newBatchCustomers(n int) []batchCustomer {
	out := make([]batchCustomer, n)
	for i := range out {
		out[i] = batchCustomer{
			Tenant: "acme",
			ID:     i,
			Name:   fmt.Sprintf("customer %d", i),
			Card:   field.NewEncrypted(fmt.Sprintf("4111-%s-%04d", batchPlainMarker, i)),
			SSN:    field.NewEncrypted(fmt.Sprintf("%s-%03d-45-6789", batchPlainMarker, i)),
			Notes:  field.NewEncrypted([]byte(fmt.Sprintf("notes %s %d", batchPlainMarker, i))),
		}
	}
	return out
}

func batchKeys(ids ...int) []repo.Key {
	out := make([]repo.Key, len(ids))
	for j, i := range ids {
		out[j] = repo.Key{Hash: "acme", Range: i}
	}
	return out
}

func batchIDRange(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func checkBatchCustomer(t *testing.T, c batchCustomer, id int) {
	t.Helper()
	card, err1 := c.Card.Value()
	ssn, err2 := c.SSN.Value()
	notes, err3 := c.Notes.Value()
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatalf("customer %d: %v", id, err)
	}
	if c.Tenant != "acme" || c.ID != id || c.Name != fmt.Sprintf("customer %d", id) ||
		card != fmt.Sprintf("4111-%s-%04d", batchPlainMarker, id) ||
		ssn != fmt.Sprintf("%s-%03d-45-6789", batchPlainMarker, id) ||
		string(notes) != fmt.Sprintf("notes %s %d", batchPlainMarker, id) {
		t.Fatalf("customer %d read back as ID %d, name %q (fields differ)", id, c.ID, c.Name)
	}
}

func batchRepo(t *testing.T, f *fixture, opts ...repo.Option) *repo.Repo[batchCustomer] {
	t.Helper()
	if _, ok := f.reg.Lookup("pii"); !ok {
		f.reg.MustRegister("pii", enc.Spec{KeyID: f.alias})
	}
	return dynotest.Table[batchCustomer](t, f.env, append([]repo.Option{repo.WithRegistry(f.reg)}, opts...)...)
}

// scanRaw reads every item of table with plain Scans, bypassing the repository.
func batchScanRaw(t *testing.T, f *fixture, table string) []map[string]types.AttributeValue {
	t.Helper()
	var out []map[string]types.AttributeValue
	p := dynamodb.NewScanPaginator(f.env.DynamoDB, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("raw Scan: %v", err)
		}
		out = append(out, page.Items...)
	}
	return out
}

// checkNoPlaintext fails if any string in a raw item holds a plaintext, and
// checks that the encrypted attributes are stored sealed.
func checkBatchNoPlaintext(t *testing.T, items []map[string]types.AttributeValue) {
	t.Helper()
	for _, item := range items {
		for attr, v := range item {
			if s, ok := v.(*types.AttributeValueMemberS); ok && strings.Contains(s.Value, batchPlainMarker) {
				t.Fatalf("raw attribute %s holds plaintext", attr)
			}
		}
		for _, attr := range []string{"card", "ssn", "notes"} {
			if s := storedString(t, item, attr); !enc.IsEncrypted(s) {
				t.Fatalf("raw attribute %s is not sealed", attr)
			}
		}
	}
}

// unprocessedInjector is SDK middleware that makes DynamoDB look busy: in
// the BatchWriteItem and BatchGetItem calls it picks, it takes the entries
// hold names out of the request and returns them as UnprocessedItems or
// UnprocessedKeys, as DynamoDB does under load. A call whose entries are all
// held is answered without reaching DynamoDB. It also counts calls.
type unprocessedInjector struct {
	// hold reports whether the entry with key is held back in call n
	// (1-based, BatchWriteItem and BatchGetItem counted together).
	hold func(n int, key map[string]types.AttributeValue) bool
	// afterHold, when set, runs after each call that held something back.
	afterHold func(heldCalls int)

	mu                 sync.Mutex
	calls, heldCalls   int
	writes, reads      atomic.Int64
	heldWrites, heldRd atomic.Int64
}

// client returns a DynamoDB client for env with the injector in its stack.
func (in *unprocessedInjector) client(env *dynotest.Env) *dynamodb.Client {
	return dynamodb.NewFromConfig(env.Config, func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(middleware.InitializeMiddlewareFunc("InjectUnprocessed", in.handle), middleware.Before)
		})
	})
}

func (in *unprocessedInjector) next() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.calls++
	return in.calls
}

func (in *unprocessedInjector) held() {
	in.mu.Lock()
	in.heldCalls++
	n := in.heldCalls
	in.mu.Unlock()
	if in.afterHold != nil {
		in.afterHold(n)
	}
}

func (in *unprocessedInjector) handle(ctx context.Context, input middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	switch p := input.Parameters.(type) {
	case *dynamodb.BatchWriteItemInput:
		in.writes.Add(1)
		n := in.next()
		send := map[string][]types.WriteRequest{}
		held := map[string][]types.WriteRequest{}
		for table, reqs := range p.RequestItems {
			for _, w := range reqs {
				key := w.DeleteRequest
				item := map[string]types.AttributeValue(nil)
				if w.PutRequest != nil {
					item = w.PutRequest.Item
				} else if key != nil {
					item = key.Key
				}
				if in.hold != nil && in.hold(n, item) {
					held[table] = append(held[table], w)
				} else {
					send[table] = append(send[table], w)
				}
			}
		}
		if len(held) == 0 {
			return next.HandleInitialize(ctx, input)
		}
		out, md := middleware.InitializeOutput{Result: &dynamodb.BatchWriteItemOutput{}}, middleware.Metadata{}
		if len(send) > 0 {
			cp := *p
			cp.RequestItems = send
			input.Parameters = &cp
			var err error
			if out, md, err = next.HandleInitialize(ctx, input); err != nil {
				return out, md, err
			}
		}
		res := out.Result.(*dynamodb.BatchWriteItemOutput)
		if res.UnprocessedItems == nil {
			res.UnprocessedItems = map[string][]types.WriteRequest{}
		}
		for table, ws := range held {
			res.UnprocessedItems[table] = append(res.UnprocessedItems[table], ws...)
			in.heldWrites.Add(int64(len(ws)))
		}
		in.held()
		return out, md, nil

	case *dynamodb.BatchGetItemInput:
		in.reads.Add(1)
		n := in.next()
		send := map[string]types.KeysAndAttributes{}
		held := map[string]types.KeysAndAttributes{}
		for table, ka := range p.RequestItems {
			s, h := ka, ka
			s.Keys, h.Keys = nil, nil
			for _, k := range ka.Keys {
				if in.hold != nil && in.hold(n, k) {
					h.Keys = append(h.Keys, k)
				} else {
					s.Keys = append(s.Keys, k)
				}
			}
			if len(s.Keys) > 0 {
				send[table] = s
			}
			if len(h.Keys) > 0 {
				held[table] = h
			}
		}
		if len(held) == 0 {
			return next.HandleInitialize(ctx, input)
		}
		out, md := middleware.InitializeOutput{Result: &dynamodb.BatchGetItemOutput{}}, middleware.Metadata{}
		if len(send) > 0 {
			cp := *p
			cp.RequestItems = send
			input.Parameters = &cp
			var err error
			if out, md, err = next.HandleInitialize(ctx, input); err != nil {
				return out, md, err
			}
		}
		res := out.Result.(*dynamodb.BatchGetItemOutput)
		if res.UnprocessedKeys == nil {
			res.UnprocessedKeys = map[string]types.KeysAndAttributes{}
		}
		for table, h := range held {
			u, ok := res.UnprocessedKeys[table]
			if !ok {
				u = h
				u.Keys = nil
			}
			u.Keys = append(u.Keys, h.Keys...)
			res.UnprocessedKeys[table] = u
			in.heldRd.Add(int64(len(h.Keys)))
		}
		in.held()
		return out, md, nil
	}
	return next.HandleInitialize(ctx, input)
}

func batchIDOf(key map[string]types.AttributeValue) string {
	if n, ok := key["id"].(*types.AttributeValueMemberN); ok {
		return n.Value
	}
	return ""
}

func TestBatch1000ItemsPutGetDelete(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	count := &unprocessedInjector{}
	r := batchRepo(t, f, repo.WithClient(count.client(f.env)))
	items := newBatchCustomers(1000)

	start := time.Now()
	if err := r.BatchPut(ctx, items); err != nil {
		t.Fatal(err)
	}
	putTime := time.Since(start)
	if st := r.Encryptor().Stats(); st.GenerateDataKeyCalls != 1 {
		t.Fatalf("%d GenerateDataKey calls for 1,000 items under one spec, want 1", st.GenerateDataKeyCalls)
	}
	if n := count.writes.Load(); n != 40 {
		t.Fatalf("%d BatchWriteItem requests for 1,000 items, want 40", n)
	}
	raw := batchScanRaw(t, f, r.Table())
	if len(raw) != 1000 {
		t.Fatalf("%d items in the table, want 1000", len(raw))
	}
	checkBatchNoPlaintext(t, raw)

	// All 1,000 keys in a random order, and ten that do not exist.
	ids := batchIDRange(0, 1010)
	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	start = time.Now()
	got, err := r.BatchGet(ctx, batchKeys(ids...))
	if err != nil {
		t.Fatal(err)
	}
	getTime := time.Since(start)
	if len(got) != 1000 {
		t.Fatalf("%d items read, want 1000", len(got))
	}
	j := 0
	for _, id := range ids {
		if id >= 1000 {
			continue
		}
		checkBatchCustomer(t, got[j], id) // in the order of the keys
		j++
	}
	if st := r.Encryptor().Stats(); st.DecryptCalls != 1 {
		t.Fatalf("%d Decrypt calls for 1,000 items sealed under one data key, want 1", st.DecryptCalls)
	}
	if n := count.reads.Load(); n != 11 {
		t.Fatalf("%d BatchGetItem requests for 1,010 keys, want 11", n)
	}

	start = time.Now()
	if err := r.BatchDelete(ctx, batchKeys(batchIDRange(0, 1000)...)); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: BatchPut 1000 in %v (%d requests), BatchGet 1010 keys in %v (%d requests), BatchDelete 1000 in %v; KMS %+v",
		f.env.Backend, putTime, 40, getTime, 11, time.Since(start), r.Encryptor().Stats())
	if n := len(batchScanRaw(t, f, r.Table())); n != 0 {
		t.Fatalf("%d items left after BatchDelete", n)
	}
}

func TestBatchPut30ItemsWith3EncryptedFieldsMakesOneGenerateDataKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := batchRepo(t, f)
	if err := r.BatchPut(ctx, newBatchCustomers(30)); err != nil {
		t.Fatal(err)
	}
	if st := r.Encryptor().Stats(); st.GenerateDataKeyCalls != 1 || st.DecryptCalls != 0 {
		t.Fatalf("KMS calls %+v, want exactly one GenerateDataKey for 90 values", st)
	}
	checkBatchNoPlaintext(t, batchScanRaw(t, f, r.Table()))
	got, err := r.BatchGet(ctx, batchKeys(batchIDRange(0, 30)...), repo.ConsistentRead())
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range got {
		checkBatchCustomer(t, c, i)
	}
	if st := r.Encryptor().Stats(); st.GenerateDataKeyCalls != 1 || st.DecryptCalls != 1 {
		t.Fatalf("KMS calls %+v, want one GenerateDataKey and one Decrypt", st)
	}
}

func TestBatchGetProjection(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := batchRepo(t, f)
	if err := r.BatchPut(ctx, newBatchCustomers(5)); err != nil {
		t.Fatal(err)
	}
	// The key attributes come back although only name is asked for: they
	// match items to keys.
	got, err := r.BatchGet(ctx, batchKeys(4, 2, 0), repo.Project("name"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].ID != 4 || got[1].ID != 2 || got[2].ID != 0 || got[0].Name != "customer 4" {
		t.Fatalf("got %+v", got)
	}
	if v, _ := got[0].Card.Value(); v != "" {
		t.Fatal("an attribute left out of the projection has a value")
	}
	if st := r.Encryptor().Stats(); st.DecryptCalls != 0 {
		t.Fatalf("%d Decrypt calls with no encrypted attribute read", st.DecryptCalls)
	}
}

func TestBatchOnHashKeyOnlyTable(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := users(t, f)
	in := []User{
		{PK: "USER#1", Email: "a@example.com", SSN: field.NewEncrypted("111-11-1111")},
		{PK: "USER#2", Email: "b@example.com", SSN: field.NewEncrypted("222-22-2222")},
	}
	if err := r.BatchPut(ctx, in); err != nil {
		t.Fatal(err)
	}
	got, err := r.BatchGet(ctx, []repo.Key{{Hash: "USER#2"}, {Hash: "USER#3"}, {Hash: "USER#1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].PK != "USER#2" || got[1].PK != "USER#1" {
		t.Fatalf("got %+v", got)
	}
	if ssn, err := got[0].SSN.Value(); err != nil || ssn != "222-22-2222" {
		t.Fatalf("ssn %q, %v", ssn, err)
	}
	if err := r.BatchDelete(ctx, []repo.Key{{Hash: "USER#1"}, {Hash: "USER#2"}}); err != nil {
		t.Fatal(err)
	}
	if n := len(batchScanRaw(t, f, r.Table())); n != 0 {
		t.Fatalf("%d items left", n)
	}
}

func TestBatchUnprocessedItemsInjectedBySDKMiddlewareAreRetried(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	// The first eight calls of each operation leave every fourth entry
	// unprocessed.
	var phase atomic.Int64 // calls before the current operation
	inj := &unprocessedInjector{hold: func(n int, key map[string]types.AttributeValue) bool {
		var id int
		fmt.Sscan(batchIDOf(key), &id)
		return n-int(phase.Load()) <= 8 && id%4 == 0
	}}
	r := batchRepo(t, f, repo.WithClient(inj.client(f.env)), repo.WithBatchBackoff(time.Millisecond, 20*time.Millisecond))
	calls := func() int64 { return inj.writes.Load() + inj.reads.Load() }

	if err := r.BatchPut(ctx, newBatchCustomers(200)); err != nil {
		t.Fatal(err)
	}
	if raw := batchScanRaw(t, f, r.Table()); len(raw) != 200 {
		t.Fatalf("%d items written, want 200", len(raw))
	}
	if inj.heldWrites.Load() == 0 || inj.writes.Load() <= 8 {
		t.Fatalf("%d writes held back over %d requests: injection did not happen", inj.heldWrites.Load(), inj.writes.Load())
	}

	phase.Store(calls())
	got, err := r.BatchGet(ctx, batchKeys(batchIDRange(0, 200)...))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 200 {
		t.Fatalf("%d items read, want 200", len(got))
	}
	for i, c := range got {
		checkBatchCustomer(t, c, i)
	}
	if inj.heldRd.Load() == 0 || inj.reads.Load() <= 2 {
		t.Fatalf("%d keys held back over %d requests: injection did not happen", inj.heldRd.Load(), inj.reads.Load())
	}

	phase.Store(calls())
	heldBefore := inj.heldWrites.Load()
	if err := r.BatchDelete(ctx, batchKeys(batchIDRange(0, 200)...)); err != nil {
		t.Fatal(err)
	}
	if n := len(batchScanRaw(t, f, r.Table())); n != 0 {
		t.Fatalf("%d items left after BatchDelete", n)
	}
	if inj.heldWrites.Load() == heldBefore {
		t.Fatal("no delete was held back")
	}
	t.Logf("%s: %d writes and %d keys held back; %d BatchWriteItem and %d BatchGetItem requests in all",
		f.env.Backend, inj.heldWrites.Load(), inj.heldRd.Load(), inj.writes.Load(), inj.reads.Load())
}

func TestBatchContextEndingWhileItemsAreUnprocessedNamesThem(t *testing.T) {
	f := newFixture(t)
	// Customers 50..54 are never processed. With one request at a time
	// they make up the last request; the context is cancelled on the third
	// time they come back unprocessed.
	stuck := func(_ int, key map[string]types.AttributeValue) bool {
		var id int
		fmt.Sscan(batchIDOf(key), &id)
		return id >= 50 && id < 55
	}
	var cancel context.CancelFunc
	inj := &unprocessedInjector{hold: stuck, afterHold: func(n int) {
		if n%3 == 0 {
			cancel()
		}
	}}
	r := batchRepo(t, f, repo.WithClient(inj.client(f.env)), repo.WithBatchConcurrency(1), repo.WithBatchBackoff(time.Millisecond, 10*time.Millisecond))
	wantStuck := batchKeys(batchIDRange(50, 55)...)

	check := func(err error, op string) {
		t.Helper()
		var be *repo.BatchError
		if !errors.As(err, &be) {
			t.Fatalf("%s: err = %v, want a *repo.BatchError", op, err)
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: err = %v, want it to wrap context.Canceled", op, err)
		}
		if be.Op != op || be.Total != 55 || fmt.Sprint(be.Unprocessed) != fmt.Sprint(wantStuck) {
			t.Fatalf("%s: BatchError %+v, want keys %v of 55", op, be, wantStuck)
		}
		if !strings.Contains(err.Error(), `{Hash:"acme" Range:54}`) {
			t.Fatalf("%s: message does not name the keys: %v", op, err)
		}
	}

	ctx, c := context.WithCancel(context.Background())
	cancel = c
	err := r.BatchPut(ctx, newBatchCustomers(55))
	check(err, "BatchPut")
	raw := batchScanRaw(t, f, r.Table())
	if len(raw) != 50 {
		t.Fatalf("%d items written, want the 50 that were not held back", len(raw))
	}
	for _, item := range raw {
		var id int
		fmt.Sscan(batchIDOf(item), &id)
		if id >= 50 {
			t.Fatalf("customer %d is listed as unprocessed but was written", id)
		}
	}

	// Reads of plain attributes return what was read along with the error.
	ctx, c = context.WithCancel(context.Background())
	cancel = c
	got, err := r.BatchGet(ctx, batchKeys(batchIDRange(0, 55)...), repo.Project("name"))
	check(err, "BatchGet")
	if len(got) != 50 || got[49].ID != 49 || got[49].Name != "customer 49" {
		t.Fatalf("BatchGet returned %d items with its error, want the 50 it read", len(got))
	}

	// Encrypted values are opened once for the whole call, after the reads;
	// with the context gone they cannot be, so no item is returned and
	// every key with an item is named. Keys known to have none are not.
	ctx, c = context.WithCancel(context.Background())
	cancel = c
	got, err = r.BatchGet(ctx, batchKeys(append(batchIDRange(0, 55), 100, 101)...))
	var be *repo.BatchError
	if got != nil || !errors.As(err, &be) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %d items, err %v", len(got), err)
	}
	if fmt.Sprint(be.Unprocessed) != fmt.Sprint(batchKeys(batchIDRange(0, 55)...)) || be.Total != 57 {
		t.Fatalf("unprocessed %v of %d, want 0..54 of 57", be.Unprocessed, be.Total)
	}
	if _, ok := enc.AsError(err); !ok {
		t.Fatalf("no *enc.Error in %v", err)
	}
	cancel()
}

func TestBatchRejectsDuplicateKeysBeforeAnyRequest(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	count := &unprocessedInjector{}
	r := batchRepo(t, f, repo.WithClient(count.client(f.env)))
	items := newBatchCustomers(40)
	items[39].ID = 3
	if err := r.BatchPut(ctx, items); !errors.Is(err, repo.ErrDuplicateKey) || !strings.Contains(err.Error(), `{Hash:"acme" Range:3}`) {
		t.Fatalf("BatchPut: %v", err)
	}
	if _, err := r.BatchGet(ctx, batchKeys(1, 2, 1)); !errors.Is(err, repo.ErrDuplicateKey) {
		t.Fatalf("BatchGet: %v", err)
	}
	if err := r.BatchDelete(ctx, batchKeys(7, 7)); !errors.Is(err, repo.ErrDuplicateKey) {
		t.Fatalf("BatchDelete: %v", err)
	}
	if n := count.writes.Load() + count.reads.Load(); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
	if st := r.Encryptor().Stats(); st.GenerateDataKeyCalls != 0 {
		t.Fatalf("KMS called before the duplicate was rejected: %+v", st)
	}
	if n := len(batchScanRaw(t, f, r.Table())); n != 0 {
		t.Fatalf("%d items written", n)
	}
}
