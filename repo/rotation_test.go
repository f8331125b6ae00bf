package repo_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

type rotated struct {
	PK  string                  `dynamodbav:"pk" repo:"hash"`
	SSN field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
}

func rotationRepo(t *testing.T, keys enc.KeyProvider, spec enc.Spec) *repo.Repo[rotated] {
	t.Helper()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", spec)
	r, err := repo.New[rotated]("t", repo.WithRegistry(reg), repo.WithEncryptor(enc.New(keys)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The migration docs/field-encryption.md gives for moving values to another
// KMS key: read with the old spec, Set each value again, write with the new.
func TestKeyRotationMigration(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New() // refuses to decrypt under another key ID, as KMS does
	from := rotationRepo(t, keys, enc.Spec{KeyID: "alias/old-key", Mode: enc.ReadOnly})
	to := rotationRepo(t, keys, enc.Spec{KeyID: "alias/new-key"})
	writer := rotationRepo(t, keys, enc.Spec{KeyID: "alias/old-key"})

	old, err := writer.Marshal(ctx, rotated{PK: "A", SSN: field.NewEncrypted("123-45-6789")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := to.Unmarshal(ctx, old); !errors.Is(err, enc.ErrInvalidCiphertext) {
		t.Fatalf("new spec on an old value: %v, want ErrInvalidCiphertext", err)
	}

	u, err := from.Unmarshal(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	unchanged, err := to.Marshal(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if unchanged["ssn"].(*types.AttributeValueMemberS).Value != old["ssn"].(*types.AttributeValueMemberS).Value {
		t.Fatal("an unchanged value was sealed again; the docs say it is written back as stored")
	}

	ssn, err := u.SSN.Value()
	if err != nil {
		t.Fatal(err)
	}
	u.SSN.Set(ssn)
	moved, err := to.Marshal(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	got, err := to.Unmarshal(ctx, moved)
	if err != nil {
		t.Fatalf("new spec on a moved value: %v", err)
	}
	if v, _ := got.SSN.Value(); v != "123-45-6789" {
		t.Fatalf("moved value opened to %q", v)
	}
}
