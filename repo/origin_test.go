package repo_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/repo"
)

func stored(m map[string]types.AttributeValue, attr string) string {
	return m[attr].(*types.AttributeValueMemberS).Value
}

func unmarshal(t *testing.T, r *repo.Repo[Record], m map[string]types.AttributeValue) Record {
	t.Helper()
	out, err := r.Unmarshal(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A loaded value bound to its item (version 2, or context from the item) goes
// back as stored only to the same place; moved elsewhere it is sealed again,
// because the stored form would no longer open there.
func TestBoundValueMovedToAnotherItemIsSealedAgain(t *testing.T) {
	keys := enctest.New()
	r := newRecords(t, boundSpec, keys)
	alice := unmarshal(t, r, marshal(t, r, newRecord("ALICE", 1, "acme")))
	bob := unmarshal(t, r, marshal(t, r, newRecord("BOB", 1, "acme")))

	before := keys.Generates.Load()
	same := marshal(t, r, alice)
	if keys.Generates.Load() != before {
		t.Fatal("an unchanged item written back to its own key was sealed again")
	}
	if stored(same, "ssn") != alice.SSN.Ciphertext() {
		t.Fatal("an unchanged value was not written back as stored")
	}

	bob.SSN = alice.SSN
	moved := marshal(t, r, bob)
	if keys.Generates.Load() != before+1 {
		t.Fatalf("moving a bound value made %d GenerateDataKey calls, want 1", keys.Generates.Load()-before)
	}
	if stored(moved, "ssn") == alice.SSN.Ciphertext() {
		t.Fatal("the moved value kept the ciphertext bound to the other item")
	}
	if got := value(t, unmarshal(t, r, moved).SSN); got != "ssn of ALICE" {
		t.Fatalf("moved value opened to %q", got)
	}
}

func TestBoundValueFollowsAChangedContextAttribute(t *testing.T) {
	keys := enctest.New()
	r := newRecords(t, boundSpec, keys)
	rec := unmarshal(t, r, marshal(t, r, newRecord("A", 1, "acme")))
	rec.TenantID = "globex"
	m := marshal(t, r, rec)
	if stored(m, "ssn") == rec.SSN.Ciphertext() {
		t.Fatal("a value kept the ciphertext sealed under the old tenant's context")
	}
	if got := value(t, unmarshal(t, r, m).SSN); got != "ssn of A" {
		t.Fatalf("opened to %q", got)
	}
}

// Without the plaintext (WriteOnly) a bound value cannot follow a move: the
// write fails before anything is sealed or sent.
func TestBoundValueMovedWithoutPlaintextFails(t *testing.T) {
	keys := enctest.New()
	writer := newRecords(t, boundSpec, keys)
	ingest := newRecords(t, boundSpec, keys, repo.WithMode(enc.WriteOnly))
	alice := unmarshal(t, ingest, marshal(t, writer, newRecord("ALICE", 1, "acme")))
	bob := unmarshal(t, ingest, marshal(t, writer, newRecord("BOB", 1, "acme")))
	bob.SSN = alice.SSN
	before := keys.Generates.Load()
	_, err := ingest.Marshal(context.Background(), bob)
	if !errors.Is(err, enc.ErrBinding) {
		t.Fatalf("err = %v, want ErrBinding", err)
	}
	if keys.Generates.Load() != before {
		t.Fatal("a refused write called GenerateDataKey")
	}
	if _, err := ingest.Marshal(context.Background(), alice); err != nil {
		t.Fatalf("an unchanged WriteOnly item could not be written back: %v", err)
	}
}

// Values bound to nothing (version 1, static context) may move freely.
func TestUnboundValueMovesAsStored(t *testing.T) {
	keys := enctest.New()
	r := newRecords(t, enc.Spec{KeyID: "alias/pii"}, keys)
	alice := unmarshal(t, r, marshal(t, r, newRecord("ALICE", 1, "acme")))
	bob := unmarshal(t, r, marshal(t, r, newRecord("BOB", 1, "acme")))
	bob.SSN = alice.SSN
	before := keys.Generates.Load()
	m := marshal(t, r, bob)
	if keys.Generates.Load() != before || stored(m, "ssn") != alice.SSN.Ciphertext() {
		t.Fatal("a version-1 value was sealed again when moved")
	}
}
