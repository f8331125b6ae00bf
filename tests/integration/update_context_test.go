package integration

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/dynotest"
	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// Ticket takes its encryption context from a number attribute: its Go zero
// value ("0") is a valid context, just not the item's.
type Ticket struct {
	PK      string                  `dynamodbav:"pk" repo:"hash"`
	Tenant  int                     `dynamodbav:"tenant"`
	Title   string                  `dynamodbav:"title"`
	SSN     field.Encrypted[string] `dynamodbav:"ssn" enc:"ticket"`
	Contact TicketContact           `dynamodbav:"contact"`
}

type TicketContact struct {
	Email string                  `dynamodbav:"email"`
	Phone field.Encrypted[string] `dynamodbav:"phone" enc:"ticket"`
}

func mustOpen(t *testing.T, got Ticket, ssn, phone string) {
	t.Helper()
	if mustValue(t, got.SSN) != ssn || mustValue(t, got.Contact.Phone) != phone {
		t.Fatalf("opened to other values than %q and %q", ssn, phone)
	}
}

func TestUpdateWithContextFromItem(t *testing.T) {
	for name, version := range map[string]byte{"version 1": enc.Version1, "version 2": enc.Version2} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t)
			f.reg.MustRegister("ticket", enc.Spec{KeyID: f.alias, Version: version, ContextFrom: map[string]string{"tenant": "tenant"}})
			r := dynotest.Table[Ticket](t, f.env, repo.WithRegistry(f.reg))
			k := repo.Key{Hash: "T#1"}
			rawKey := map[string]types.AttributeValue{"pk": s("T#1")}
			if err := r.Put(ctx, Ticket{PK: "T#1", Tenant: 7, Title: "first", SSN: field.NewEncrypted("ssn 1"),
				Contact: TicketContact{Email: "a@example.com", Phone: field.NewEncrypted("555-0001")}}); err != nil {
				t.Fatal(err)
			}
			stored := storedString(t, f.rawItem(t, r.Table(), rawKey), "ssn")

			// Sealing without the tenant would use tenant 0: refused before KMS.
			before := r.Encryptor().Stats().GenerateDataKeyCalls
			_, err := r.Update(ctx, k, repo.NewUpdate().Set("ssn", "ssn 2"))
			if !errors.Is(err, repo.ErrInvalidUpdate) || !errors.Is(err, enc.ErrItemContext) || !strings.Contains(err.Error(), "tenant") {
				t.Fatalf("update without tenant: err = %v, want ErrInvalidUpdate and ErrItemContext naming tenant", err)
			}
			if n := r.Encryptor().Stats().GenerateDataKeyCalls - before; n != 0 {
				t.Fatalf("a rejected update made %d GenerateDataKey calls", n)
			}
			// Changing the tenant alone would strand the contact's phone,
			// sealed with tenant 7: the update requires the tenant to stay.
			_, err = r.Update(ctx, k, repo.NewUpdate().Set("tenant", 8).Set("ssn", "ssn 2"))
			if !errors.Is(err, repo.ErrConditionFailed) {
				t.Fatalf("tenant changed without contact: err = %v, want ErrConditionFailed", err)
			}
			if got := storedString(t, f.rawItem(t, r.Table(), rawKey), "ssn"); got != stored {
				t.Fatal("a refused update changed the item")
			}
			// Giving the current tenant only to seal the new SSN works, and the
			// phone, left as stored, still opens.
			if _, err := r.Update(ctx, k, repo.NewUpdate().Set("tenant", 7).Set("ssn", "ssn 1b")); err != nil {
				t.Fatal(err)
			}
			if got, err := r.Get(ctx, k); err != nil {
				t.Fatal(err)
			} else {
				mustOpen(t, got, "ssn 1b", "555-0001")
			}
			before = r.Encryptor().Stats().GenerateDataKeyCalls

			// With the tenant set, the values open; one data key for the call.
			updated, err := r.Update(ctx, k, repo.NewUpdate().Set("tenant", 7).Set("ssn", "ssn 2").
				Set("contact", TicketContact{Email: "b@example.com", Phone: field.NewEncrypted("555-0002")}), repo.ReturnNew())
			if err != nil {
				t.Fatal(err)
			}
			mustOpen(t, updated, "ssn 2", "555-0002")
			if n := r.Encryptor().Stats().GenerateDataKeyCalls - before; n != 1 {
				t.Fatalf("update of two values under one tenant made %d GenerateDataKey calls, want 1", n)
			}
			got, err := r.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			mustOpen(t, got, "ssn 2", "555-0002")
			if v, _ := enc.EnvelopeVersion(got.SSN.Ciphertext()); v != version {
				t.Fatalf("stored as version %d", v)
			}

			// Plain attributes change freely.
			if _, err := r.Update(ctx, k, repo.NewUpdate().Set("title", "second").Set("contact.email", "c@example.com")); err != nil {
				t.Fatal(err)
			}

			// Moving the item to another tenant with all its values.
			if _, err := r.Update(ctx, k, repo.NewUpdate().Set("tenant", 8).Set("ssn", "ssn 3").
				Set("contact", TicketContact{Phone: field.NewEncrypted("555-0003")})); err != nil {
				t.Fatal(err)
			}
			got, err = r.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			mustOpen(t, got, "ssn 3", "555-0003")

			// The values are bound to tenant 8 in KMS: under 7 they do not open.
			raw := f.rawItem(t, r.Table(), rawKey)
			raw["tenant"] = &types.AttributeValueMemberN{Value: "7"}
			f.rawPut(t, r.Table(), raw)
			if _, err := r.Get(ctx, k); !errors.Is(err, enc.ErrInvalidCiphertext) {
				t.Fatalf("opened under another tenant: err = %v, want ErrInvalidCiphertext", err)
			}
		})
	}
}
