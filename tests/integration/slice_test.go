package integration

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

func TestPutStoresVersion1EnvelopeAndGetOpensIt(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := users(t, f)
	err := r.Put(ctx, User{PK: "USER#123", Email: "john@example.com", SSN: field.NewEncrypted("123-45-6789")})
	if err != nil {
		t.Fatal(err)
	}

	stored := storedString(t, f.rawItem(t, r.Table(), map[string]types.AttributeValue{"pk": s("USER#123")}), "ssn")
	if !strings.HasPrefix(stored, "ENC:") {
		t.Fatalf("stored ssn %q lacks the ENC: prefix", stored)
	}
	if strings.Contains(stored, "123-45-6789") {
		t.Fatal("stored ssn contains the plaintext")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(stored, "ENC:"))
	if err != nil {
		t.Fatalf("stored ssn is not base64: %v", err)
	}
	if raw[0] != 0x01 {
		t.Fatalf("version byte %#x, want 0x01", raw[0])
	}
	keyLen := int(binary.BigEndian.Uint16(raw[1:3]))
	if want := 3 + keyLen + 12 + len("123-45-6789") + 16; len(raw) != want {
		t.Fatalf("envelope is %d bytes, want %d for a %d-byte encrypted data key", len(raw), want, keyLen)
	}
	if strings.Contains(string(raw), "123-45-6789") {
		t.Fatal("envelope bytes contain the plaintext")
	}

	u, err := r.Get(ctx, repo.Key{Hash: "USER#123"})
	if err != nil {
		t.Fatal(err)
	}
	ssn, err := u.SSN.Value()
	if err != nil || ssn != "123-45-6789" {
		t.Fatalf("Value() = %q, %v", ssn, err)
	}
	if u.Email != "john@example.com" {
		t.Fatalf("email %q", u.Email)
	}
	if st := r.Encryptor().Stats(); st.GenerateDataKeyCalls != 1 || st.DecryptCalls != 1 {
		t.Fatalf("KMS calls %+v, want one GenerateDataKey and one Decrypt", st)
	}
}

func TestValueWithoutPrefixLoadsAsPlaintext(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := users(t, f)
	f.rawPut(t, r.Table(), map[string]types.AttributeValue{"pk": s("USER#legacy"), "email": s("old@example.com"), "ssn": s("987-65-4321")})

	u, err := r.Get(ctx, repo.Key{Hash: "USER#legacy"})
	if err != nil {
		t.Fatal(err)
	}
	ssn, err := u.SSN.Value()
	if err != nil || ssn != "987-65-4321" {
		t.Fatalf("Value() = %q, %v", ssn, err)
	}
	if st := r.Encryptor().Stats(); st.DecryptCalls != 0 {
		t.Fatalf("a plaintext value cost %d Decrypt calls", st.DecryptCalls)
	}

	// Saving it again encrypts it.
	if err := r.Put(ctx, u); err != nil {
		t.Fatal(err)
	}
	stored := storedString(t, f.rawItem(t, r.Table(), map[string]types.AttributeValue{"pk": s("USER#legacy")}), "ssn")
	if !enc.IsEncrypted(stored) || strings.Contains(stored, "987-65-4321") {
		t.Fatalf("re-saved legacy value stored as %q", stored)
	}
}

func TestMarshalOutsideRepositoryFailsClosed(t *testing.T) {
	_, err := attributevalue.MarshalMap(User{PK: "USER#1", SSN: field.NewEncrypted("123-45-6789")})
	if !errors.Is(err, enc.ErrNotSealed) {
		t.Fatalf("MarshalMap of an unsealed value: %v, want ErrNotSealed", err)
	}
	if err != nil && strings.Contains(err.Error(), "123-45-6789") {
		t.Fatal("error text contains the plaintext")
	}
}

func TestGetMissingItem(t *testing.T) {
	f := newFixture(t)
	r := users(t, f)
	_, err := r.Get(context.Background(), repo.Key{Hash: "USER#nobody"})
	if !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("err = %v, want repo.ErrNotFound", err)
	}
}

func TestDeleteRemovesItem(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := users(t, f)
	if err := r.Put(ctx, User{PK: "USER#9", SSN: field.NewEncrypted("x")}); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, repo.Key{Hash: "USER#9"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, repo.Key{Hash: "USER#9"}); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("after Delete: %v", err)
	}
}
