package integration

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/dynotest"
	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// txAccount and txAudit are two item types in two tables, written together.
type txAccount struct {
	PK      string                  `dynamodbav:"pk" repo:"hash"`
	Owner   string                  `dynamodbav:"owner"`
	Balance int64                   `dynamodbav:"balance"`
	IBAN    field.Encrypted[string] `dynamodbav:"iban" enc:"pii"`
	Version int64                   `dynamodbav:"version" repo:"version"`
}

type txAudit struct {
	PK   string                  `dynamodbav:"pk" repo:"hash"`
	SK   string                  `dynamodbav:"sk" repo:"range"`
	Note field.Encrypted[string] `dynamodbav:"note" enc:"pii"`
	Card field.Encrypted[string] `dynamodbav:"card" enc:"pii"`
}

const (
	txIBAN = "DE89370400440532013000"
	txCard = "4111111111111111"
)

// txRepos makes the two repositories over one encryptor, so that their
// values can share data keys, and skips where the backend has no
// transactions.
func txRepos(t *testing.T, f *fixture) (*repo.Repo[txAccount], *repo.Repo[txAudit], *enc.Encryptor) {
	t.Helper()
	if f.env.Backend == "strict" {
		t.Skip("dynalite implements neither TransactWriteItems nor TransactGetItems; transactions run on moto")
	}
	if _, ok := f.reg.Lookup("pii"); !ok {
		f.reg.MustRegister("pii", enc.Spec{KeyID: f.alias})
	}
	e := f.env.Encryptor()
	opts := []repo.Option{repo.WithRegistry(f.reg), repo.WithEncryptor(e)}
	return dynotest.Table[txAccount](t, f.env, opts...), dynotest.Table[txAudit](t, f.env, opts...), e
}

func txSeed(t *testing.T, accounts *repo.Repo[txAccount], pks ...string) {
	t.Helper()
	for _, pk := range pks {
		if err := accounts.Put(context.Background(), txAccount{PK: pk, Owner: "owner of " + pk, Balance: 100, IBAN: field.NewEncrypted(txIBAN)}); err != nil {
			t.Fatal(err)
		}
	}
}

// A transaction over two item types seals all its values with one data key
// and reads them back with one Decrypt.
func TestTransactTwoItemTypes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	accounts, audits, e := txRepos(t, f)
	err := repo.Transact(ctx,
		accounts.TxPut(txAccount{PK: "A", Owner: "ann", Balance: 10, IBAN: field.NewEncrypted(txIBAN)}),
		accounts.TxPut(txAccount{PK: "B", Owner: "bob", Balance: 20, IBAN: field.NewEncrypted(txIBAN)}),
		audits.TxPut(txAudit{PK: "A", SK: "1", Note: field.NewEncrypted("opened"), Card: field.NewEncrypted(txCard)}),
	)
	if err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.GenerateDataKeyCalls != 1 {
		t.Fatalf("%d GenerateDataKey calls for 4 values of one spec in one transaction, want 1", st.GenerateDataKeyCalls)
	}
	for _, raw := range []map[string]types.AttributeValue{
		f.rawItem(t, accounts.Table(), map[string]types.AttributeValue{"pk": s("A")}),
		f.rawItem(t, audits.Table(), map[string]types.AttributeValue{"pk": s("A"), "sk": s("1")}),
	} {
		for name, av := range raw {
			if v, ok := av.(*types.AttributeValueMemberS); ok && (strings.Contains(v.Value, txIBAN) || strings.Contains(v.Value, txCard) || v.Value == "opened") {
				t.Fatalf("attribute %s stored in plaintext: %q", name, v.Value)
			}
		}
	}
	var a, b txAccount
	var au txAudit
	if err := repo.TransactGet(ctx, accounts.TxGet(repo.Key{Hash: "A"}, &a), accounts.TxGet(repo.Key{Hash: "B"}, &b),
		audits.TxGet(repo.Key{Hash: "A", Range: "1"}, &au)); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.DecryptCalls != 1 {
		t.Fatalf("%d Decrypt calls to read 4 values sealed with one data key, want 1", st.DecryptCalls)
	}
	if a.Owner != "ann" || a.Version != 1 || b.Balance != 20 || b.Version != 1 {
		t.Fatalf("read %+v and %+v, want ann and bob at version 1", a, b)
	}
	for name, got := range map[string]field.Encrypted[string]{"a.IBAN": a.IBAN, "note": au.Note, "card": au.Card} {
		if _, err := got.Value(); err != nil {
			t.Fatalf("%s does not open: %v", name, err)
		}
	}
	if v, _ := au.Card.Value(); v != txCard {
		t.Fatalf("card read back as %q", v)
	}
}

// A cancelled transaction writes nothing, and says which operation failed
// and why, with the current item opened when asked.
func TestTransactCancelledWritesNothing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	accounts, audits, _ := txRepos(t, f)
	txSeed(t, accounts, "A", "B")
	before := f.rawItem(t, accounts.Table(), map[string]types.AttributeValue{"pk": s("A")})
	err := repo.Transact(ctx,
		accounts.TxUpdate(repo.Key{Hash: "A"}, repo.NewUpdate().Add("balance", -50)),
		audits.TxPut(txAudit{PK: "A", SK: "2", Note: field.NewEncrypted("moved 50"), Card: field.NewEncrypted(txCard)}),
		accounts.TxCheck(repo.Key{Hash: "B"}, expression.Name("owner").Equal(expression.Value("nobody")), repo.ReturnCurrentOnFailure()),
	)
	var tce *repo.TxCanceledError
	if !errors.As(err, &tce) || !errors.Is(err, repo.ErrConditionFailed) || errors.Is(err, repo.ErrVersionConflict) {
		t.Fatalf("err = %v, want a *TxCanceledError matching ErrConditionFailed only", err)
	}
	if len(tce.Reasons) != 3 {
		t.Fatalf("%d reasons, want one per operation: %+v", len(tce.Reasons), tce.Reasons)
	}
	if r := tce.Reasons[2]; r.Code != repo.TxReasonConditionFailed || r.Op != "check" || r.Key.Hash != "B" {
		t.Fatalf("reason of the check = %+v", r)
	}
	for i := range 2 {
		if c := tce.Reasons[i].Code; c != repo.TxReasonNone {
			t.Fatalf("operation %d has reason %q, want None", i, c)
		}
	}
	cur, ok := tce.Reasons[2].Current.(txAccount)
	if !ok {
		t.Fatalf("current item of the failed check is %T, want txAccount", tce.Reasons[2].Current)
	}
	if v, err := cur.IBAN.Value(); err != nil || v != txIBAN || cur.Owner != "owner of B" {
		t.Fatalf("current item %+v opens to %q, %v", cur, v, err)
	}
	after := f.rawItem(t, accounts.Table(), map[string]types.AttributeValue{"pk": s("A")})
	if txNumber(after["balance"]) != txNumber(before["balance"]) || txNumber(after["version"]) != txNumber(before["version"]) {
		t.Fatalf("item A changed by a cancelled transaction: %v -> %v", before, after)
	}
	if _, err := audits.Get(ctx, repo.Key{Hash: "A", Range: "2"}, repo.ConsistentRead()); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("audit item of a cancelled transaction: err = %v, want ErrNotFound", err)
	}
}

// A transaction with a stale version is refused as a version conflict.
func TestTransactVersionConflict(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	accounts, audits, _ := txRepos(t, f)
	txSeed(t, accounts, "A")
	stale, err := accounts.Get(ctx, repo.Key{Hash: "A"}, repo.ConsistentRead())
	if err != nil {
		t.Fatal(err)
	}
	fresh := stale
	fresh.Balance = 1
	if err := accounts.Put(ctx, fresh); err != nil { // version 1 -> 2
		t.Fatal(err)
	}
	stale.Balance = 999
	err = repo.Transact(ctx,
		accounts.TxPut(stale),
		audits.TxPut(txAudit{PK: "A", SK: "3", Note: field.NewEncrypted("stale"), Card: field.NewEncrypted(txCard)}),
	)
	if !errors.Is(err, repo.ErrVersionConflict) || !errors.Is(err, repo.ErrConditionFailed) {
		t.Fatalf("stale TxPut: err = %v, want ErrVersionConflict and ErrConditionFailed", err)
	}
	err = repo.Transact(ctx, accounts.TxUpdate(repo.Key{Hash: "A"}, repo.NewUpdate().Set("owner", "eve"), repo.IfVersion(1)))
	if !errors.Is(err, repo.ErrVersionConflict) {
		t.Fatalf("TxUpdate with IfVersion(1) of version 2: err = %v, want ErrVersionConflict", err)
	}
	err = repo.Transact(ctx, accounts.TxDelete(repo.Key{Hash: "A"}, repo.IfVersion(2)),
		audits.TxDelete(repo.Key{Hash: "A", Range: "3"}))
	if err != nil {
		t.Fatalf("TxDelete with the right version: %v", err)
	}
	if _, err := accounts.Get(ctx, repo.Key{Hash: "A"}, repo.ConsistentRead()); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("after TxDelete: %v, want ErrNotFound", err)
	}
}

// TransactGet sets every destination and names what it could not read.
func TestTransactGetMissingItem(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	accounts, _, _ := txRepos(t, f)
	txSeed(t, accounts, "A")
	a, missing := txAccount{}, txAccount{Owner: "left over"}
	err := repo.TransactGet(ctx, accounts.TxGet(repo.Key{Hash: "A"}, &a), accounts.TxGet(repo.Key{Hash: "nobody"}, &missing))
	if !errors.Is(err, repo.ErrNotFound) || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("err = %v, want ErrNotFound naming the missing key", err)
	}
	if a.Owner != "owner of A" || missing.Owner != "" {
		t.Fatalf("destinations %+v and %+v, want A read and the missing one zeroed", a, missing)
	}
}

// A transaction with an idempotency token goes through. moto accepts
// ClientRequestToken but does not deduplicate on it (AWS applies a repeat
// with the same token within ten minutes once), so only the first send is
// checked here; a unit test checks the token reaches the request.
func TestTransactWithToken(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	accounts, _, _ := txRepos(t, f)
	txSeed(t, accounts, "A")
	err := repo.Transact(ctx, repo.TxToken("transfer-42"), accounts.TxUpdate(repo.Key{Hash: "A"}, repo.NewUpdate().Add("balance", 5)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := accounts.Get(ctx, repo.Key{Hash: "A"}, repo.ConsistentRead())
	if err != nil {
		t.Fatal(err)
	}
	if got.Balance != 105 || got.Version != 2 {
		t.Fatalf("balance %d, version %d after the transaction; want 105 and 2", got.Balance, got.Version)
	}
}

func txNumber(av types.AttributeValue) string {
	if n, ok := av.(*types.AttributeValueMemberN); ok {
		return n.Value
	}
	return "not a number"
}
