package repo_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

type Guarded struct {
	PK    string                    `dynamodbav:"pk" repo:"hash"`
	SSN   field.Encrypted[string]   `dynamodbav:"ssn" enc:"strict"`
	Cards []field.Encrypted[string] `dynamodbav:"cards" enc:"strict"`
	Note  field.Encrypted[string]   `dynamodbav:"note" enc:"lax"`
}

func guardedRepo(t *testing.T) (*repo.Repo[Guarded], *writeRecorder) {
	t.Helper()
	db := &writeRecorder{}
	reg := enc.NewRegistry()
	reg.MustRegister("strict", enc.Spec{KeyID: "alias/pii", RequireSealed: true})
	reg.MustRegister("lax", enc.Spec{KeyID: "alias/pii"})
	r, err := repo.New[Guarded]("guarded", repo.WithClient(db), repo.WithRegistry(reg), repo.WithEncryptor(enc.New(enctest.New())))
	if err != nil {
		t.Fatal(err)
	}
	return r, db
}

// Under RequireSealed a stored value that is not sealed fails its item,
// naming the attribute and never the stored text.
func TestRequireSealedRefusesWhatIsNotSealed(t *testing.T) {
	ctx := context.Background()
	r, db := guardedRepo(t)
	sealed, err := r.Marshal(ctx, Guarded{PK: "G", SSN: field.NewEncrypted("123-45-6789"), Cards: []field.Encrypted[string]{field.NewEncrypted("4111")}})
	if err != nil {
		t.Fatal(err)
	}
	const secret = "078-05-1120"
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	for _, c := range []struct {
		name, attr string
		set        func(m map[string]types.AttributeValue)
	}{
		{"plaintext", "ssn", func(m map[string]types.AttributeValue) { m["ssn"] = s(secret) }},
		{"number", "ssn", func(m map[string]types.AttributeValue) { m["ssn"] = &types.AttributeValueMemberN{Value: "78051120"} }},
		{"NULL", "ssn", func(m map[string]types.AttributeValue) { m["ssn"] = &types.AttributeValueMemberNULL{Value: true} }},
		{"plaintext in a list", "cards[1]", func(m map[string]types.AttributeValue) {
			m["cards"] = &types.AttributeValueMemberL{Value: []types.AttributeValue{m["cards"].(*types.AttributeValueMemberL).Value[0], s(secret)}}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			item := map[string]types.AttributeValue{}
			for k, v := range sealed {
				item[k] = v
			}
			c.set(item)
			db.item = item
			_, err := r.Get(ctx, repo.Key{Hash: "G"})
			var ie *repo.ItemError
			e, ok := enc.AsError(err)
			if !errors.As(err, &ie) || !errors.Is(err, enc.ErrUnsealed) || !ok || e.Attribute != c.attr {
				t.Fatalf("err = %v, want an *ItemError with ErrUnsealed naming %s", err, c.attr)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "78051120") {
				t.Fatalf("error quotes the stored value: %v", err)
			}
		})
	}
	// Absent values, sealed values, and plaintext under a spec without the
	// policy load as before.
	db.item = map[string]types.AttributeValue{"pk": s("G"), "ssn": sealed["ssn"], "note": s("legacy note")}
	g, err := r.Get(ctx, repo.Key{Hash: "G"})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := g.Note.Value(); v != "legacy note" {
		t.Fatalf("plaintext under a spec without RequireSealed: %q", v)
	}
}

// An item a write returns never fails the write, but its unsealed value is
// neither usable nor written back.
func TestRequireSealedOnReturnedItems(t *testing.T) {
	ctx := context.Background()
	r, db := guardedRepo(t)
	db.item = map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "G"}, "ssn": &types.AttributeValueMemberS{Value: "078-05-1120"}}
	g, err := r.DeleteReturning(ctx, repo.Key{Hash: "G"})
	if err != nil {
		t.Fatalf("DeleteReturning failed although the delete happened: %v", err)
	}
	if v, err := g.SSN.Value(); !errors.Is(err, enc.ErrUnsealed) || v != "" {
		t.Fatalf("Value() = %q, %v; want ErrUnsealed and no value", v, err)
	}
	if err := r.Put(ctx, g); err == nil || len(db.puts) != 0 {
		t.Fatalf("Put of the returned item: %v with %d requests; want it refused", err, len(db.puts))
	}
}
