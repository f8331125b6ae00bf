package repo_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

type Account struct {
	PK     string                  `dynamodbav:"pk" repo:"hash"`
	SK     int                     `dynamodbav:"sk" repo:"range"`
	Name   string                  `dynamodbav:"name"`
	SSN    field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
	Card   field.Encrypted[string] `dynamodbav:"card" enc:"pii"`
	Secret field.Encrypted[[]byte] `dynamodbav:"secret" enc:"pii"`
}

func newRepo(t *testing.T, opts ...repo.Option) (*repo.Repo[Account], *enctest.Provider) {
	t.Helper()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	keys := enctest.New()
	r, err := repo.New[Account]("accounts", append([]repo.Option{repo.WithRegistry(reg), repo.WithEncryptor(enc.New(keys))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r, keys
}

func TestMarshalSealsWithOneDataKeyAndUnmarshalOpens(t *testing.T) {
	ctx := context.Background()
	r, keys := newRepo(t)
	in := Account{PK: "A", SK: 1, Name: "n", SSN: field.NewEncrypted("123-45-6789"),
		Card: field.NewEncrypted("4111111111111111"), Secret: field.NewEncrypted([]byte{0, 1, 2})}
	m, err := r.Marshal(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if n := keys.Generates.Load(); n != 1 {
		t.Fatalf("%d GenerateDataKey calls for three fields under one spec, want 1", n)
	}
	for _, attr := range []string{"ssn", "card", "secret"} {
		s, ok := m[attr].(*types.AttributeValueMemberS)
		if !ok || !enc.IsEncrypted(s.Value) {
			t.Fatalf("%s stored as %#v", attr, m[attr])
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s.Value, enc.Prefix))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte("123-45-6789")) || bytes.Contains(raw, []byte("4111111111111111")) {
			t.Fatalf("%s holds plaintext", attr)
		}
	}
	if in.SSN.IsSealed() {
		t.Fatal("Marshal changed the caller's item")
	}

	out, err := r.Unmarshal(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if n := keys.Decrypts.Load(); n != 1 {
		t.Fatalf("%d Decrypt calls for one shared data key, want 1", n)
	}
	ssn, _ := out.SSN.Value()
	card, _ := out.Card.Value()
	secret, _ := out.Secret.Value()
	if ssn != "123-45-6789" || card != "4111111111111111" || string(secret) != "\x00\x01\x02" {
		t.Fatalf("opened %q %q %v", ssn, card, secret)
	}
	// Loaded and unchanged: written back exactly as stored, with no KMS call.
	again, err := r.Marshal(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if again["ssn"].(*types.AttributeValueMemberS).Value != m["ssn"].(*types.AttributeValueMemberS).Value {
		t.Fatal("unchanged value was re-sealed")
	}
	if n := keys.Generates.Load(); n != 1 {
		t.Fatalf("re-marshal of unchanged values called GenerateDataKey (%d calls)", n)
	}
}

func TestNewRejectsFieldWithoutSpec(t *testing.T) {
	type NoTag struct {
		PK  string                  `dynamodbav:"pk" repo:"hash"`
		SSN field.Encrypted[string] `dynamodbav:"ssn"`
	}
	type Unregistered struct {
		PK  string                  `dynamodbav:"pk" repo:"hash"`
		SSN field.Encrypted[string] `dynamodbav:"ssn" enc:"nope"`
	}
	reg := enc.NewRegistry()
	_, err := repo.New[NoTag]("t", repo.WithRegistry(reg))
	if !errors.Is(err, enc.ErrNoSpec) || !strings.Contains(err.Error(), "NoTag.SSN") {
		t.Fatalf("no tag: %v", err)
	}
	_, err = repo.New[Unregistered]("t", repo.WithRegistry(reg))
	if !errors.Is(err, enc.ErrNoSpec) || !strings.Contains(err.Error(), "Unregistered.SSN") || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("unregistered: %v", err)
	}
}

func TestReadOnlyRefusesNewValuesWithoutKMS(t *testing.T) {
	r, keys := newRepo(t, repo.WithMode(enc.ReadOnly))
	_, err := r.Marshal(context.Background(), Account{PK: "A", SK: 1, SSN: field.NewEncrypted("x")})
	if !errors.Is(err, enc.ErrReadOnly) {
		t.Fatalf("err = %v", err)
	}
	if keys.Generates.Load() != 0 {
		t.Fatal("ReadOnly called GenerateDataKey")
	}
}

func TestOmitEmptyLeavesOutAbsentEncryptedValue(t *testing.T) {
	type Optional struct {
		PK  string                  `dynamodbav:"pk" repo:"hash"`
		SSN field.Encrypted[string] `dynamodbav:"ssn,omitempty" enc:"pii"`
		Tax field.Encrypted[string] `dynamodbav:"tax" enc:"pii"`
	}
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	r, err := repo.New[Optional]("t", repo.WithRegistry(reg), repo.WithEncryptor(enc.New(enctest.New())))
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Marshal(context.Background(), Optional{PK: "A"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m["ssn"]; ok {
		t.Fatalf("omitempty absent value written as %#v", m["ssn"])
	}
	if _, ok := m["tax"].(*types.AttributeValueMemberNULL); !ok {
		t.Fatalf("absent value without omitempty written as %#v, want NULL", m["tax"])
	}
}
