package repo_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// txRecorder records transactions and answers them with the errors of
// errs in turn (nil once they run out); gets answers TransactGetItems.
type txRecorder struct {
	repo.API

	mu     sync.Mutex
	writes []*dynamodb.TransactWriteItemsInput
	reads  []*dynamodb.TransactGetItemsInput
	errs   []error
	items  map[string]map[string]types.AttributeValue // by pk
}

func (f *txRecorder) next() error {
	if len(f.errs) == 0 {
		return nil
	}
	err := f.errs[0]
	f.errs = f.errs[1:]
	return err
}

func (f *txRecorder) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes = append(f.writes, in)
	return &dynamodb.TransactWriteItemsOutput{}, f.next()
}

func (f *txRecorder) TransactGetItems(_ context.Context, in *dynamodb.TransactGetItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactGetItemsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, in)
	if err := f.next(); err != nil {
		return nil, err
	}
	out := &dynamodb.TransactGetItemsOutput{}
	for _, g := range in.TransactItems {
		pk := g.Get.Key["pk"].(*types.AttributeValueMemberS).Value
		out.Responses = append(out.Responses, types.ItemResponse{Item: f.items[pk]})
	}
	return out, nil
}

// Versioned is an item type with a version, beside Account.
type Versioned struct {
	PK      string                  `dynamodbav:"pk" repo:"hash"`
	Note    field.Encrypted[string] `dynamodbav:"note" enc:"pii"`
	Version int64                   `dynamodbav:"v" repo:"version"`
}

// txRepos returns two repositories of different item types over one
// client and one encryptor.
func txRepos(t *testing.T) (*repo.Repo[Account], *repo.Repo[Versioned], *txRecorder, *enctest.Provider) {
	t.Helper()
	db := &txRecorder{}
	keys := enctest.New()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	opts := []repo.Option{repo.WithClient(db), repo.WithRegistry(reg), repo.WithEncryptor(enc.New(keys)), repo.WithBatchBackoff(time.Millisecond, 2*time.Millisecond)}
	accounts, err := repo.New[Account]("accounts", opts...)
	if err != nil {
		t.Fatal(err)
	}
	notes, err := repo.New[Versioned]("notes", opts...)
	if err != nil {
		t.Fatal(err)
	}
	return accounts, notes, db, keys
}

func cancelled(codes ...string) error {
	e := &types.TransactionCanceledException{Message: aws.String("cancelled")}
	for _, c := range codes {
		e.CancellationReasons = append(e.CancellationReasons, types.CancellationReason{Code: aws.String(c)})
	}
	return e
}

func TestTransactSealsAllValuesWithOneDataKey(t *testing.T) {
	ctx := context.Background()
	accounts, notes, db, keys := txRepos(t)
	err := repo.Transact(ctx,
		accounts.TxPut(Account{PK: "A", SK: 1, SSN: field.NewEncrypted("123-45-6789"), Card: field.NewEncrypted("4111")}),
		accounts.TxUpdate(repo.Key{Hash: "B", Range: 2}, repo.NewUpdate().Set("ssn", "987-65-4321")),
		notes.TxPut(Versioned{PK: "N", Note: field.NewEncrypted("hello")}),
		notes.TxDelete(repo.Key{Hash: "M"}, repo.IfVersion(3)),
		accounts.TxCheck(repo.Key{Hash: "C", Range: 3}, expression.Name("name").AttributeExists()),
	)
	if err != nil {
		t.Fatal(err)
	}
	if n := keys.Generates.Load(); n != 1 {
		t.Fatalf("%d GenerateDataKey calls for 4 values under one spec in one transaction, want 1", n)
	}
	if len(db.writes) != 1 || len(db.writes[0].TransactItems) != 5 {
		t.Fatalf("requests %v, want one with 5 operations", db.writes)
	}
	items := db.writes[0].TransactItems
	put := items[2].Put
	if put == nil || conditionText(put.ConditionExpression, put.ExpressionAttributeNames, put.ExpressionAttributeValues) != "attribute_not_exists (v)" {
		t.Fatalf("put of a new versioned item: %+v, want condition attribute_not_exists (v)", put)
	}
	if v := put.Item["v"].(*types.AttributeValueMemberN).Value; v != "1" {
		t.Fatalf("new item stored at version %s, want 1", v)
	}
	if s := put.Item["note"].(*types.AttributeValueMemberS).Value; !enc.IsEncrypted(s) {
		t.Fatalf("note sent as %q, not sealed", s)
	}
	del := items[3].Delete
	if got := conditionText(del.ConditionExpression, del.ExpressionAttributeNames, del.ExpressionAttributeValues); got != "v = 3" {
		t.Fatalf("delete condition %q, want v = 3", got)
	}
	if c := items[4].ConditionCheck; c == nil || conditionText(c.ConditionExpression, c.ExpressionAttributeNames, nil) != "attribute_exists (name)" {
		t.Fatalf("condition check %+v", items[4])
	}
}

func TestTransactLimitsBeforeAnyCall(t *testing.T) {
	ctx := context.Background()
	accounts, notes, db, keys := txRepos(t)
	secret := field.NewEncrypted("123-45-6789")
	var many []repo.TxWrite
	for i := range 101 {
		many = append(many, accounts.TxPut(Account{PK: "A", SK: i, SSN: secret}))
	}
	big := strings.Repeat("x", 300<<10)
	var large []repo.TxWrite
	for i := range 14 {
		large = append(large, accounts.TxPut(Account{PK: "A", SK: i, Name: big, SSN: secret}))
	}
	for _, c := range []struct {
		name string
		ops  []repo.TxWrite
		want string
	}{
		{"101 operations", many, "101 operations"},
		{"one item twice", []repo.TxWrite{accounts.TxPut(Account{PK: "A", SK: 1, SSN: secret}), accounts.TxDelete(repo.Key{Hash: "A", Range: 1})}, "operations 0 and 1"},
		{"over 4 MB", large, "4 MB"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := repo.Transact(ctx, c.ops...)
			if !errors.Is(err, repo.ErrTxLimit) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrTxLimit naming %q", err, c.want)
			}
		})
	}
	// The same key in two tables is two items.
	if err := repo.Transact(ctx, accounts.TxDelete(repo.Key{Hash: "A", Range: 1}), notes.TxDelete(repo.Key{Hash: "A"})); err != nil {
		t.Fatalf("one key in two tables: %v", err)
	}
	if n := keys.Generates.Load(); n != 0 || len(db.writes) != 1 {
		t.Fatalf("%d GenerateDataKey calls and %d requests, want none for the refused transactions", n, len(db.writes))
	}
	if err := repo.TransactGet(ctx); err == nil {
		t.Fatal("TransactGet with no reads succeeded")
	}
}

func TestTransactRefusesBeforeSealing(t *testing.T) {
	ctx := context.Background()
	accounts, notes, db, keys := txRepos(t)
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	other, err := repo.New[Versioned]("notes", repo.WithClient(&txRecorder{}), repo.WithRegistry(reg), repo.WithEncryptor(enc.New(enctest.New())))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		ops  []repo.TxWrite
		want string
	}{
		{"condition on an encrypted value", []repo.TxWrite{accounts.TxCheck(repo.Key{Hash: "A", Range: 1}, expression.Name("ssn").Equal(expression.Value("x")))}, "encrypted"},
		{"ReturnNew", []repo.TxWrite{accounts.TxUpdate(repo.Key{Hash: "A", Range: 1}, repo.NewUpdate().Set("name", "n"), repo.ReturnNew())}, "TxUpdate does not take ReturnNew"},
		{"IfVersion on an unversioned type", []repo.TxWrite{accounts.TxDelete(repo.Key{Hash: "A", Range: 1}, repo.IfVersion(1))}, "no `repo:\"version\"` field"},
		{"IfVersion on Put", []repo.TxWrite{notes.TxPut(Versioned{PK: "N"}, repo.IfVersion(1))}, "taken from the item"},
		{"Set of the version", []repo.TxWrite{notes.TxUpdate(repo.Key{Hash: "N"}, repo.NewUpdate().Set("v", 9))}, "item's version"},
		{"two tokens", []repo.TxWrite{repo.TxToken("a"), repo.TxToken("b"), notes.TxDelete(repo.Key{Hash: "N"})}, "TxToken"},
		{"a bad key after a value to seal", []repo.TxWrite{accounts.TxPut(Account{PK: "A", SK: 1, SSN: field.NewEncrypted("1")}), accounts.TxDelete(repo.Key{Hash: "A"})}, "range key"},
		{"two clients", []repo.TxWrite{notes.TxDelete(repo.Key{Hash: "N"}), other.TxDelete(repo.Key{Hash: "M"})}, "another DynamoDB client"},
		{"no operations", []repo.TxWrite{repo.TxToken("a")}, "no operations"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := repo.Transact(ctx, c.ops...); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one naming %q", err, c.want)
			}
		})
	}
	if n := keys.Generates.Load(); n != 0 || len(db.writes) != 0 {
		t.Fatalf("%d GenerateDataKey calls and %d requests for refused transactions, want none", n, len(db.writes))
	}
}

func TestTransactToken(t *testing.T) {
	accounts, _, db, _ := txRepos(t)
	if err := repo.Transact(context.Background(), repo.TxToken("order-7"), accounts.TxDelete(repo.Key{Hash: "A", Range: 1})); err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(db.writes[0].ClientRequestToken); got != "order-7" {
		t.Fatalf("ClientRequestToken %q, want order-7", got)
	}
}

func TestTransactRetriesConflicts(t *testing.T) {
	ctx := context.Background()
	accounts, notes, db, keys := txRepos(t)
	db.errs = []error{cancelled("None", "TransactionConflict"), &types.TransactionInProgressException{}}
	err := repo.Transact(ctx, accounts.TxPut(Account{PK: "A", SK: 1, SSN: field.NewEncrypted("1")}), notes.TxDelete(repo.Key{Hash: "N"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(db.writes) != 3 || keys.Generates.Load() != 1 {
		t.Fatalf("%d requests and %d GenerateDataKey calls, want 3 requests of one sealing", len(db.writes), keys.Generates.Load())
	}
	// A conflict that lasts ends with the caller's context.
	db.writes = nil
	for range 1000 {
		db.errs = append(db.errs, cancelled("TransactionConflict", "None"))
	}
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	err = repo.Transact(short, notes.TxDelete(repo.Key{Hash: "N"}), accounts.TxDelete(repo.Key{Hash: "A", Range: 1}))
	var tce *repo.TxCanceledError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &tce) || tce.Reasons[0].Code != repo.TxReasonConflict {
		t.Fatalf("err = %v, want the deadline and the conflict", err)
	}
	if errors.Is(err, repo.ErrConditionFailed) {
		t.Fatalf("a conflict matches ErrConditionFailed: %v", err)
	}
}

func TestTransactCancellationReasons(t *testing.T) {
	ctx := context.Background()
	accounts, notes, db, _ := txRepos(t)
	db.errs = []error{cancelled("None", "ConditionalCheckFailed", "ValidationError")}
	err := repo.Transact(ctx,
		accounts.TxDelete(repo.Key{Hash: "A", Range: 1}),
		notes.TxPut(Versioned{PK: "N", Version: 4}),
		notes.TxUpdate(repo.Key{Hash: "M"}, repo.NewUpdate().Remove("note")),
	)
	var tce *repo.TxCanceledError
	if !errors.As(err, &tce) || len(db.writes) != 1 {
		t.Fatalf("err = %v after %d requests, want a *TxCanceledError after one", err, len(db.writes))
	}
	if !errors.Is(err, repo.ErrConditionFailed) || !errors.Is(err, repo.ErrVersionConflict) {
		t.Fatalf("err = %v, want ErrConditionFailed and ErrVersionConflict (the put's only condition is its version)", err)
	}
	r := tce.Reasons
	if r[1].Op != "put" || r[1].Table != "notes" || r[1].Key.Hash != "N" || !r[1].VersionConflict || r[2].Code != repo.TxReasonValidation {
		t.Fatalf("reasons %+v", r)
	}
	for _, want := range []string{"operation 1 (put notes", "version conflict", "operation 2 (update notes", "ValidationError"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%q lacks %q", err.Error(), want)
		}
	}
	if strings.Contains(err.Error(), "operation 0") {
		t.Fatalf("%q names an operation that did not fail", err.Error())
	}
}

func TestTransactGetOpensWithOneDecrypt(t *testing.T) {
	ctx := context.Background()
	accounts, notes, db, keys := txRepos(t)
	a := Account{PK: "A", SK: 1, SSN: field.NewEncrypted("123-45-6789"), Card: field.NewEncrypted("4111")}
	n := Versioned{PK: "N", Note: field.NewEncrypted("hello"), Version: 2}
	if err := repo.Transact(ctx, accounts.TxPut(a), notes.TxPut(n)); err != nil {
		t.Fatal(err)
	}
	db.items = map[string]map[string]types.AttributeValue{"A": db.writes[0].TransactItems[0].Put.Item, "N": db.writes[0].TransactItems[1].Put.Item}
	var gotA Account
	gotN, missing := Versioned{}, Versioned{PK: "stale"}
	err := repo.TransactGet(ctx, accounts.TxGet(repo.Key{Hash: "A", Range: 1}, &gotA), notes.TxGet(repo.Key{Hash: "N"}, &gotN), notes.TxGet(repo.Key{Hash: "Z"}, &missing))
	if !errors.Is(err, repo.ErrNotFound) || !strings.Contains(err.Error(), `"Z"`) {
		t.Fatalf("err = %v, want ErrNotFound naming Z", err)
	}
	if d := keys.Decrypts.Load(); d != 1 {
		t.Fatalf("%d Decrypt calls for values of one data key across two item types, want 1", d)
	}
	if v, _ := gotA.Card.Value(); v != "4111" || gotN.Version != 3 || missing.PK != "" {
		t.Fatalf("read %+v, %+v, %+v", gotA, gotN, missing)
	}
	if v, _ := gotN.Note.Value(); v != "hello" {
		t.Fatalf("note %q", v)
	}
	if err := repo.TransactGet(ctx, notes.TxGet(repo.Key{Hash: "N"}, nil)); err == nil {
		t.Fatal("a nil destination was accepted")
	}
	if err := repo.TransactGet(ctx, notes.TxGet(repo.Key{Hash: "N"}, &gotN), notes.TxGet(repo.Key{Hash: "N"}, &gotN)); !errors.Is(err, repo.ErrTxLimit) {
		t.Fatalf("one item read twice: %v, want ErrTxLimit", err)
	}
}
