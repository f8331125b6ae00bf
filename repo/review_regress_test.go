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

type regressBlob struct {
	PK     string                  `dynamodbav:"pk" repo:"hash"`
	Secret field.Encrypted[[]byte] `dynamodbav:"secret" enc:"pii"`
	SSN    field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
}

func regressRepo(t *testing.T, keys *enctest.Provider, opts ...repo.Option) (*repo.Repo[regressBlob], *trapDB) {
	t.Helper()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	db := newTrapDB("blobs", "pk")
	base := []repo.Option{repo.WithClient(db), repo.WithRegistry(reg), repo.WithEncryptor(enc.New(keys))}
	r, err := repo.New[regressBlob]("blobs", append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r, db
}

// A nil []byte set as a new value is a value like any other: sealed, and
// refused in ReadOnly mode; never written as a plain empty string.
func TestNilBytesAreSealed(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	r, db := regressRepo(t, keys)
	if err := r.Put(ctx, regressBlob{PK: "a", Secret: field.NewEncrypted([]byte(nil))}); err != nil {
		t.Fatal(err)
	}
	stored := db.get(map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "a"}})["secret"]
	if s, ok := stored.(*types.AttributeValueMemberS); !ok || !enc.IsEncrypted(s.Value) {
		t.Fatalf("nil []byte stored as %#v", stored)
	}
	got, err := r.Get(ctx, repo.Key{Hash: "a"})
	if v, verr := got.Secret.Value(); err != nil || verr != nil || v == nil || len(v) != 0 {
		t.Fatalf("read back %v, %v, %v", v, err, verr)
	}
	ro, _ := regressRepo(t, keys, repo.WithMode(enc.ReadOnly))
	if err := ro.Put(ctx, regressBlob{PK: "b", Secret: field.NewEncrypted([]byte(nil))}); !errors.Is(err, enc.ErrReadOnly) {
		t.Fatalf("ReadOnly Put of a new nil []byte: %v", err)
	}
	if _, err := ro.Update(ctx, repo.Key{Hash: "a"}, repo.NewUpdate().Set("secret", []byte(nil))); !errors.Is(err, enc.ErrReadOnly) {
		t.Fatalf("ReadOnly Update of a nil []byte: %v", err)
	}
}

// A read whose context ends while its data keys are being decrypted fails
// for the values it could not open; none opens as an empty value.
func TestContextEndingMidOpenFailsTheValuesLeft(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	r, _ := regressRepo(t, keys)
	// Two Marshal calls: ssn and secret under two data keys.
	m1, err := r.Marshal(ctx, regressBlob{PK: "a", SSN: field.NewEncrypted("123-45-6789")})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := r.Marshal(ctx, regressBlob{PK: "a", Secret: field.NewEncrypted([]byte("s3cret"))})
	if err != nil {
		t.Fatal(err)
	}
	m1["secret"] = m2["secret"]
	cctx, cancel := context.WithCancel(ctx)
	decrypts := 0
	keys.Fail = func(op string, _ enc.KeyRef) error {
		if op == "Decrypt" {
			if decrypts++; decrypts == 1 {
				cancel() // the first Decrypt answers; the context ends with it
			}
		}
		return nil
	}
	r2, _ := regressRepo(t, keys, repo.WithEncryptor(enc.New(keys, enc.WithConcurrency(1))))
	got, err := r2.Unmarshal(cctx, m1)
	if err == nil {
		ssn, e1 := got.SSN.Value()
		sec, e2 := got.Secret.Value()
		t.Fatalf("no error: ssn %q (%v), secret %q (%v)", ssn, e1, sec, e2)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// An update path into a struct must name its members exactly: attributevalue
// reads names without regard to case, so "address.Street" would be stored
// in plaintext beside the encrypted "street" and read back as it.
func TestUpdatePathMissingByCaseIsRefused(t *testing.T) {
	r, db, keys := profiles(t)
	_, err := r.Update(context.Background(), repo.Key{Hash: "p"}, repo.NewUpdate().Set("address.Street", "1 Main St"))
	if !errors.Is(err, repo.ErrInvalidUpdate) || !strings.Contains(err.Error(), "Street") {
		t.Fatalf("err = %v", err)
	}
	if len(db.updates) != 0 || keys.Generates.Load() != 0 {
		t.Fatal("a request or KMS call was made")
	}
	// The exact name of a plain member still works.
	if _, err := r.Update(context.Background(), repo.Key{Hash: "p"}, repo.NewUpdate().Set("address.city", "Leeds")); err != nil {
		t.Fatal(err)
	}
}
