package repo_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// Ledger takes encryption context from a number attribute, whose Go zero
// value ("0") would be a valid but wrong context.
type Ledger struct {
	PK      string                  `dynamodbav:"pk" repo:"hash"`
	Tenant  int                     `dynamodbav:"tenant"`
	Email   string                  `dynamodbav:"email"`
	SSN     field.Encrypted[string] `dynamodbav:"ssn" enc:"tenant"`
	Address LedgerAddress           `dynamodbav:"address"`
	Note    field.Encrypted[string] `dynamodbav:"note" enc:"plain"`
}

type LedgerAddress struct {
	City   string                  `dynamodbav:"city"`
	Street field.Encrypted[string] `dynamodbav:"street" enc:"tenant"`
}

func ledgers(t *testing.T) (*repo.Repo[Ledger], *writeRecorder, *enctest.Provider) {
	t.Helper()
	reg := enc.NewRegistry()
	reg.MustRegister("tenant", enc.Spec{KeyID: "alias/pii", ContextFrom: map[string]string{"tenant": "tenant"}})
	reg.MustRegister("plain", enc.Spec{KeyID: "alias/pii"})
	keys := enctest.New()
	db := &writeRecorder{}
	r, err := repo.New[Ledger]("ledgers", repo.WithRegistry(reg), repo.WithEncryptor(enc.New(keys)), repo.WithClient(db))
	if err != nil {
		t.Fatal(err)
	}
	return r, db, keys
}

var setClause = regexp.MustCompile(`(#[A-Za-z0-9_]+) = (:[A-Za-z0-9_]+)`)

// setValues returns the values an UpdateItem request sets with plain
// "SET #name = :value" clauses, by attribute name.
func setValues(in *dynamodb.UpdateItemInput) map[string]types.AttributeValue {
	out := map[string]types.AttributeValue{}
	for _, m := range setClause.FindAllStringSubmatch(*in.UpdateExpression, -1) {
		out[in.ExpressionAttributeNames[m[1]]] = in.ExpressionAttributeValues[m[2]]
	}
	return out
}

func TestUpdateSealingNeedsTheContextAttributeSet(t *testing.T) {
	ctx := context.Background()
	k := repo.Key{Hash: "L#1"}
	for name, u := range map[string]repo.Update{
		"top-level value":   repo.NewUpdate().Set("ssn", "123-45-6789"),
		"nested value":      repo.NewUpdate().Set("address", LedgerAddress{City: "Oslo", Street: field.NewEncrypted("Main St 1")}),
		"with other values": repo.NewUpdate().Set("email", "a@example.com").Set("note", "n").Set("ssn", "123-45-6789"),
		// The item may already have a tenant, which this update would not change.
		"SetIfNotExists": repo.NewUpdate().SetIfNotExists("tenant", 7).Set("ssn", "123-45-6789").Remove("address"),
	} {
		t.Run(name, func(t *testing.T) {
			r, db, keys := ledgers(t)
			_, err := r.Update(ctx, k, u)
			if !errors.Is(err, enc.ErrItemContext) || !errors.Is(err, repo.ErrInvalidUpdate) || !strings.Contains(err.Error(), "tenant") {
				t.Fatalf("err = %v, want ErrItemContext and ErrInvalidUpdate naming tenant", err)
			}
			if strings.Contains(err.Error(), "123-45-6789") || strings.Contains(err.Error(), "Main St") {
				t.Fatalf("error shows a plaintext: %v", err)
			}
			if keys.Generates.Load() != 0 || db.calls() != 0 {
				t.Fatalf("%d GenerateDataKey calls and %d requests for a rejected update", keys.Generates.Load(), db.calls())
			}
		})
	}

	// Values without ContextFrom, and removals, need no context.
	r, db, _ := ledgers(t)
	if _, err := r.Update(ctx, k, repo.NewUpdate().Set("note", "n").Set("ssn", nil).Remove("address")); err != nil {
		t.Fatal(err)
	}
	if got := updateClauses(t, db.updates[0].ExpressionAttributeNames, db.updates[0].ExpressionAttributeValues, *db.updates[0].UpdateExpression); strings.Join(got, "; ") != "REMOVE address; SET note = <sealed>; SET ssn = NULL" {
		t.Fatalf("update %q", got)
	}
}

func TestUpdateSealsWithTheContextItSets(t *testing.T) {
	ctx := context.Background()
	r, db, _ := ledgers(t)
	u := repo.NewUpdate().Set("tenant", 7).Set("ssn", "123-45-6789").
		Set("address", LedgerAddress{City: "Oslo", Street: field.NewEncrypted("Main St 1")})
	if _, err := r.Update(ctx, repo.Key{Hash: "L#1"}, u); err != nil {
		t.Fatal(err)
	}
	item := setValues(db.updates[0])
	item["pk"] = &types.AttributeValueMemberS{Value: "L#1"}
	got, err := r.Unmarshal(ctx, item)
	if err != nil {
		t.Fatalf("stored values do not open with the item's context: %v", err)
	}
	if value(t, got.SSN) != "123-45-6789" || value(t, got.Address.Street) != "Main St 1" {
		t.Fatal("values did not round-trip")
	}
	// enctest checks the context as KMS does: another tenant does not open.
	item["tenant"] = &types.AttributeValueMemberN{Value: "0"}
	if _, err := r.Unmarshal(ctx, item); !errors.Is(err, enc.ErrInvalidCiphertext) {
		t.Fatalf("opened under tenant 0: %v", err)
	}
}

// Record (engine_test.go) uses a version-2 spec with context from tenant_id,
// for top-level values, values in a list of documents and in a map.
func TestUpdateVersion2SealsWithContextAndBinding(t *testing.T) {
	ctx := context.Background()
	db := &writeRecorder{}
	keys := enctest.New()
	r := newRecords(t, boundSpec, keys, repo.WithClient(db))
	k := repo.Key{Hash: "R#1", Range: 3}

	_, err := r.Update(ctx, k, repo.NewUpdate().Set("ssn", "123-45-6789"))
	if !errors.Is(err, enc.ErrItemContext) || !errors.Is(err, repo.ErrInvalidUpdate) || !strings.Contains(err.Error(), "tenant_id") || keys.Generates.Load() != 0 {
		t.Fatalf("without tenant_id: err = %v, %d GenerateDataKey calls", err, keys.Generates.Load())
	}

	u := repo.NewUpdate().Set("tenant_id", "acme").Set("ssn", "123-45-6789").Set("note", "n").
		Set("cards", []Card{{Number: field.NewEncrypted("4111")}}).
		Set("phones", map[string]field.Encrypted[string]{"home": field.NewEncrypted("555-0100")})
	if _, err := r.Update(ctx, k, u); err != nil {
		t.Fatal(err)
	}
	item := setValues(db.updates[0])
	item["pk"] = &types.AttributeValueMemberS{Value: "R#1"}
	item["sk"] = &types.AttributeValueMemberN{Value: "3"}
	got, err := r.Unmarshal(ctx, item)
	if err != nil {
		t.Fatalf("stored values do not open: %v", err)
	}
	if value(t, got.SSN) != "123-45-6789" || value(t, got.Cards[0].Number) != "4111" || value(t, got.Phones["home"]) != "555-0100" {
		t.Fatal("values did not round-trip")
	}
	item["tenant_id"] = &types.AttributeValueMemberS{Value: "globex"}
	if _, err := r.Unmarshal(ctx, item); !errors.Is(err, enc.ErrInvalidCiphertext) {
		t.Fatalf("opened under another tenant: %v", err)
	}
}

func TestUpdateOfContextAttributeNeedsItsEncryptedAttributes(t *testing.T) {
	ctx := context.Background()
	k := repo.Key{Hash: "L#1"}
	for _, c := range []struct {
		name string
		u    repo.Update
		want []string // named in the error
	}{
		{"Remove alone", repo.NewUpdate().Remove("tenant"), []string{`"tenant"`, `"address"`}},
		{"Add alone", repo.NewUpdate().Add("tenant", 1), []string{`"tenant"`, `"address"`}},
		{"SetIfNotExists alone", repo.NewUpdate().SetIfNotExists("tenant", 8), []string{`"tenant"`, `"address"`}},
		{"Remove with a value left", repo.NewUpdate().Remove("tenant").Set("ssn", "123-45-6789"), []string{`"tenant"`, `"address"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, db, keys := ledgers(t)
			_, err := r.Update(ctx, k, c.u)
			if !errors.Is(err, repo.ErrInvalidUpdate) {
				t.Fatalf("err = %v, want ErrInvalidUpdate", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("err = %v, want it to name %s", err, w)
				}
			}
			if keys.Generates.Load() != 0 || db.calls() != 0 {
				t.Fatalf("%d GenerateDataKey calls and %d requests for a rejected update", keys.Generates.Load(), db.calls())
			}
		})
	}

	// A Set of the tenant that leaves values sealed with it in place only
	// gives the context for the values the update seals: the request then
	// requires the stored tenant to be the same.
	for name, u := range map[string]repo.Update{
		"Set alone":                              repo.NewUpdate().Set("tenant", 8),
		"nested value left":                      repo.NewUpdate().Set("tenant", 8).Set("ssn", "123-45-6789"),
		"top-level value left":                   repo.NewUpdate().Set("tenant", 8).Remove("address"),
		"nested path is not the whole attribute": repo.NewUpdate().Set("tenant", 8).Set("ssn", "123-45-6789").Remove("address.street"),
	} {
		t.Run(name, func(t *testing.T) {
			r, db, _ := ledgers(t)
			if _, err := r.Update(ctx, k, u); err != nil {
				t.Fatal(err)
			}
			in := db.updates[len(db.updates)-1]
			cond := aws.ToString(in.ConditionExpression)
			if !strings.Contains(cond, "attribute_not_exists") || !strings.Contains(cond, " OR ") || !strings.Contains(cond, "=") {
				t.Fatalf("condition %q does not require the tenant to stay", cond)
			}
			var tenantPlaceholder string
			for ph, n := range in.ExpressionAttributeNames {
				if n == "tenant" {
					tenantPlaceholder = ph
				}
			}
			if tenantPlaceholder == "" || !strings.Contains(cond, tenantPlaceholder+" = ") {
				t.Fatalf("condition %q (names %v) does not compare the tenant", cond, in.ExpressionAttributeNames)
			}
		})
	}

	// Moving the item to another tenant with all its values, or changing
	// what does not depend on the tenant, is fine.
	r, db, _ := ledgers(t)
	for _, u := range []repo.Update{
		repo.NewUpdate().Set("tenant", 8).Set("ssn", "123-45-6789").Set("address", LedgerAddress{City: "Oslo", Street: field.NewEncrypted("Main St 1")}),
		repo.NewUpdate().Remove("tenant", "ssn", "address"),
		repo.NewUpdate().Set("email", "a@example.com").Set("note", "n").Set("address.city", "Bergen"),
	} {
		if _, err := r.Update(ctx, k, u); err != nil {
			t.Fatal(err)
		}
	}
	if db.calls() != 3 {
		t.Fatalf("%d requests, want 3", db.calls())
	}
}

type omittedTenant struct {
	PK     string                  `dynamodbav:"pk" repo:"hash"`
	Tenant string                  `dynamodbav:"tenant,omitempty"`
	SSN    field.Encrypted[string] `dynamodbav:"ssn" enc:"tenant"`
	Note   field.Encrypted[string] `dynamodbav:"note" enc:"plain"`
}

// An empty value for an omitempty context attribute removes it, which would
// strand the values sealed with it: refused before any KMS call.
func TestUpdateRemovingPinnedContextMakesNoKMSCall(t *testing.T) {
	reg := enc.NewRegistry()
	reg.MustRegister("tenant", enc.Spec{KeyID: "alias/pii", ContextFrom: map[string]string{"tenant": "tenant"}})
	reg.MustRegister("plain", enc.Spec{KeyID: "alias/pii"})
	keys := enctest.New()
	db := &writeRecorder{}
	r, err := repo.New[omittedTenant]("t", repo.WithRegistry(reg), repo.WithEncryptor(enc.New(keys)), repo.WithClient(db))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Update(context.Background(), repo.Key{Hash: "A"}, repo.NewUpdate().Set("tenant", "").Set("note", "n"))
	if !errors.Is(err, repo.ErrInvalidUpdate) {
		t.Fatalf("err = %v, want ErrInvalidUpdate", err)
	}
	if keys.Generates.Load() != 0 || db.calls() != 0 {
		t.Fatalf("%d GenerateDataKey calls and %d requests for a refused update", keys.Generates.Load(), db.calls())
	}
}
