package repo_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/smithy-go/tracing"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/internal/fakedynamo"
	"github.com/dynoseal/dynoseal/internal/teltest"
	"github.com/dynoseal/dynoseal/kmsx"
	"github.com/dynoseal/dynoseal/repo"
)

const telSSN = "987-65-4321"

// tracedRepo is an Account repository over an in-process DynamoDB whose
// repository and encryptor report to one recorder.
func tracedRepo(t *testing.T, db repo.API, opts ...repo.Option) (*repo.Repo[Account], *teltest.Recorder, *bytes.Buffer) {
	t.Helper()
	rec := teltest.New()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	e := enc.New(enctest.New(), enc.WithObserver(kmsx.Telemetry(rec, rec, nil)))
	base := []repo.Option{repo.WithClient(db), repo.WithRegistry(reg), repo.WithEncryptor(e),
		repo.WithTracerProvider(rec), repo.WithMeterProvider(rec), repo.WithLogger(log)}
	r, err := repo.New[Account]("accounts", append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r, rec, &logs
}

func fakeAccounts(t testing.TB) repo.API {
	t.Helper()
	f := fakedynamo.New()
	if err := f.AddTable("accounts", fakedynamo.KeyAttribute{Name: "pk", Type: "S"}, fakedynamo.KeyAttribute{Name: "sk", Type: "N"}); err != nil {
		t.Fatal(err)
	}
	return f.Client()
}

// only returns the one span called name.
func only(t *testing.T, rec *teltest.Recorder, name string) *teltest.Span {
	t.Helper()
	s := rec.Named(name)
	if len(s) != 1 {
		t.Fatalf("%d spans %s, want 1", len(s), name)
	}
	return s[0]
}

func wantProps(t *testing.T, s *teltest.Span, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if got := s.Prop(k); got != v {
			t.Errorf("span %s: %s = %v (%T), want %v (%T)", s.Name(), k, got, got, v, v)
		}
	}
}

// wantSum fails unless metric name with attributes kv summed to want.
func wantSum(t *testing.T, rec *teltest.Recorder, want float64, name string, kv ...string) {
	t.Helper()
	if got := rec.Sum(name, kv...); got != want {
		t.Errorf("%s%v = %v, want %v", name, kv, got, want)
	}
}

func TestPutAndGetAreTracedWithTheirKMSCalls(t *testing.T) {
	ctx := context.Background()
	r, rec, _ := tracedRepo(t, fakeAccounts(t))
	if err := r.Put(ctx, Account{PK: "A", SK: 1, SSN: field.NewEncrypted(telSSN), Card: field.NewEncrypted("4111")}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, repo.Key{Hash: "A", Range: 1}); err != nil {
		t.Fatal(err)
	}
	put, get := only(t, rec, "dynoseal.repo.Put"), only(t, rec, "dynoseal.repo.Get")
	common := map[string]any{"dynoseal.table": "accounts", "dynoseal.specs": "pii", "dynoseal.key_ids": "alias/pii",
		"dynoseal.item_count": 1, "dynoseal.kms.calls": int64(1), "dynoseal.cache.hits": int64(0)}
	wantProps(t, put, common)
	wantProps(t, get, common)
	if put.Kind != tracing.SpanKindClient || put.Status != tracing.SpanStatusUnset {
		t.Errorf("Put span kind %v, status %v", put.Kind, put.Status)
	}
	if gen := only(t, rec, "dynoseal.kms.GenerateDataKey"); gen.Parent != put {
		t.Error("GenerateDataKey span is not a child of the Put span")
	}
	if dec := only(t, rec, "dynoseal.kms.Decrypt"); dec.Parent != get {
		t.Error("Decrypt span is not a child of the Get span")
	}
	for _, p := range rec.Problems(telSSN, "4111") {
		t.Error(p)
	}
	wantSum(t, rec, 2, "dynoseal.kms.calls")
}

func TestFailedOperationSpanNamesTheErrorClass(t *testing.T) {
	r, rec, _ := tracedRepo(t, fakeAccounts(t))
	if _, err := r.Get(context.Background(), repo.Key{Hash: "nobody", Range: 1}); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	get := only(t, rec, "dynoseal.repo.Get")
	if get.Status != tracing.SpanStatusError || get.Prop("error.type") != "not_found" {
		t.Fatalf("Get span status %v, error.type %v", get.Status, get.Prop("error.type"))
	}
	for _, p := range rec.Problems("nobody") {
		t.Error(p) // an item's key is not recorded either
	}
}

func TestConcurrentOperationsCountOnlyTheirOwnKMSCalls(t *testing.T) {
	ctx := context.Background()
	r, rec, _ := tracedRepo(t, fakeAccounts(t))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Put(ctx, Account{PK: "A", SK: i, SSN: field.NewEncrypted(telSSN)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	puts := rec.Named("dynoseal.repo.Put")
	if len(puts) != 8 {
		t.Fatalf("%d Put spans, want 8", len(puts))
	}
	for _, s := range puts {
		if s.Prop("dynoseal.kms.calls") != int64(1) {
			t.Errorf("a Put span counts %v KMS calls, want 1", s.Prop("dynoseal.kms.calls"))
		}
	}
}

func TestQueryAndPagesCountTheirItems(t *testing.T) {
	ctx := context.Background()
	r, rec, _ := tracedRepo(t, fakeAccounts(t))
	for i := range 3 {
		if err := r.Put(ctx, Account{PK: "A", SK: i, SSN: field.NewEncrypted(telSSN)}); err != nil {
			t.Fatal(err)
		}
	}
	cond := expression.Key("pk").Equal(expression.Value("A"))
	for _, err := range r.Query(ctx, cond) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.QueryPage(ctx, cond, "", repo.Limit(2)); err != nil {
		t.Fatal(err)
	}
	if n, err := r.QueryCount(ctx, cond); err != nil || n != 3 {
		t.Fatalf("count %d, %v", n, err)
	}
	q := only(t, rec, "dynoseal.repo.Query")
	wantProps(t, q, map[string]any{"dynoseal.item_count": 3, "dynoseal.kms.calls": int64(3)})
	wantProps(t, only(t, rec, "dynoseal.repo.QueryPage"), map[string]any{"dynoseal.item_count": 2})
	wantProps(t, only(t, rec, "dynoseal.repo.QueryCount"), map[string]any{"dynoseal.item_count": 3, "dynoseal.kms.calls": int64(0)})
	for _, p := range rec.Problems(telSSN) {
		t.Error(p)
	}
}

func TestBatchRetriesAndUnprocessedItemsAreCountedAndLogged(t *testing.T) {
	ctx := context.Background()
	db := newFakeBatchDB(t)
	db.hold = func(n int, key string) bool { return n == 1 && strings.HasSuffix(key, "#0") }
	r, rec, logs := tracedRepo(t, db, repo.WithBatchBackoff(1, 1))
	if err := r.BatchPut(ctx, batchAccounts(3)); err != nil {
		t.Fatal(err)
	}
	wantSum(t, rec, 1, "dynoseal.batch.retries", "table", "accounts", "operation", "BatchPut", "throttled", "false")
	if !strings.Contains(logs.String(), "retrying unprocessed batch items") {
		t.Errorf("log: %q", logs.String())
	}
	wantProps(t, only(t, rec, "dynoseal.repo.BatchPut"), map[string]any{"dynoseal.item_count": 3, "dynoseal.kms.calls": int64(1), "dynoseal.retries": int64(1)})

	// Keys never processed before ctx ends are counted and logged.
	db.hold = func(int, string) bool { return true }
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	var be *repo.BatchError
	if err := r.BatchDelete(short, batchAccountKeys(0, 2)); !errors.As(err, &be) {
		t.Fatalf("err = %v", err)
	}
	wantSum(t, rec, 2, "dynoseal.batch.unprocessed", "operation", "BatchDelete")
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "left unprocessed") {
		t.Errorf("log: %q", logs.String())
	}
}

func TestTransactionSpanAndConflictRetries(t *testing.T) {
	ctx := context.Background()
	db := &txRecorder{}
	db.errs = []error{cancelled("None", "TransactionConflict")}
	r, rec, logs := tracedRepo(t, db, repo.WithBatchBackoff(1, 1))
	err := repo.Transact(ctx, r.TxPut(Account{PK: "A", SK: 1, SSN: field.NewEncrypted(telSSN)}), r.TxDelete(repo.Key{Hash: "B", Range: 2}))
	if err != nil {
		t.Fatal(err)
	}
	tx := only(t, rec, "dynoseal.repo.Transact")
	wantProps(t, tx, map[string]any{"dynoseal.table": "accounts", "dynoseal.item_count": 2, "dynoseal.kms.calls": int64(1), "dynoseal.specs": "pii", "dynoseal.retries": int64(1)})
	if only(t, rec, "dynoseal.kms.GenerateDataKey").Parent != tx {
		t.Error("GenerateDataKey span is not a child of the Transact span")
	}
	wantSum(t, rec, 1, "dynoseal.tx.conflict_retries", "operation", "Transact")
	if !strings.Contains(logs.String(), "level=INFO") || !strings.Contains(logs.String(), "transaction conflict") {
		t.Errorf("log: %q", logs.String())
	}
}

func TestNoSpansWithoutATracer(t *testing.T) {
	ctx := context.Background()
	rec := teltest.New()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	// Metrics only: operations are not traced, and nothing fails.
	r, err := repo.New[Account]("accounts", repo.WithClient(fakeAccounts(t)), repo.WithRegistry(reg),
		repo.WithEncryptor(enc.New(enctest.New())), repo.WithMeterProvider(rec))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Put(ctx, Account{PK: "A", SK: 1, SSN: field.NewEncrypted(telSSN)}); err != nil {
		t.Fatal(err)
	}
	if s := rec.Spans(); len(s) != 0 {
		t.Fatalf("%d spans without a tracer", len(s))
	}
}
