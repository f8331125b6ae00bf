package enc_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/dynoseal/dynoseal/enc"
)

// fixedKeys returns one known data key for every decrypt and counts calls.
type fixedKeys struct {
	plain, blob []byte
	decrypts    int
}

func (f *fixedKeys) GenerateDataKey(context.Context, enc.KeyRef) ([]byte, []byte, error) {
	return bytes.Clone(f.plain), bytes.Clone(f.blob), nil
}

func (f *fixedKeys) DecryptDataKey(_ context.Context, _ enc.KeyRef, blob []byte) ([]byte, error) {
	f.decrypts++
	if !bytes.Equal(blob, f.blob) {
		return nil, enc.ErrInvalidCiphertext
	}
	return bytes.Clone(f.plain), nil
}

var (
	knownKey   = bytes.Repeat([]byte{0x42}, 32)
	knownBlob  = []byte("kms-ciphertext-blob-of-the-data-key")
	knownNonce = []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	spec       = enc.Spec{KeyID: "alias/test"}
)

// handBuilt lays out a version-1 envelope byte by byte, independently of the
// package's own encoder.
func handBuilt(t *testing.T, plaintext string) (string, []byte) {
	t.Helper()
	block, err := aes.NewCipher(knownKey)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte{0x01}
	raw = binary.BigEndian.AppendUint16(raw, uint16(len(knownBlob)))
	raw = append(raw, knownBlob...)
	raw = append(raw, knownNonce...)
	raw = append(raw, gcm.Seal(nil, knownNonce, []byte(plaintext), nil)...)
	return "ENC:" + base64.StdEncoding.EncodeToString(raw), raw
}

func TestDecryptHandBuiltVersion1(t *testing.T) {
	stored, _ := handBuilt(t, "123-45-6789")
	keys := &fixedKeys{plain: knownKey, blob: knownBlob}
	got, err := enc.New(keys).Decrypt(context.Background(), spec, stored)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "123-45-6789" {
		t.Fatalf("got %q", got)
	}
}

// A value sealed by the encryptor has exactly the version-1 layout.
func TestEncryptWritesVersion1Layout(t *testing.T) {
	keys := &fixedKeys{plain: knownKey, blob: knownBlob}
	stored, err := enc.New(keys).Encrypt(context.Background(), spec, []byte("john"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stored, enc.Prefix) {
		t.Fatalf("no prefix: %q", stored)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(stored, enc.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	if raw[0] != 1 || int(binary.BigEndian.Uint16(raw[1:3])) != len(knownBlob) || !bytes.Equal(raw[3:3+len(knownBlob)], knownBlob) {
		t.Fatalf("header: % x", raw[:3+len(knownBlob)])
	}
	rest := raw[3+len(knownBlob):]
	if len(rest) != 12+len("john")+16 {
		t.Fatalf("nonce+ciphertext+tag is %d bytes", len(rest))
	}
	block, _ := aes.NewCipher(knownKey)
	gcm, _ := cipher.NewGCM(block)
	plain, err := gcm.Open(nil, rest[:12], rest[12:], nil)
	if err != nil || string(plain) != "john" {
		t.Fatalf("independent open: %q, %v", plain, err)
	}
}

func TestMalformedInputs(t *testing.T) {
	_, raw := handBuilt(t, "x")
	enc64 := func(b []byte) string { return "ENC:" + base64.StdEncoding.EncodeToString(b) }
	withVersion := func(v byte) []byte { b := bytes.Clone(raw); b[0] = v; return b }
	withKeyLen := func(n uint16) []byte { b := bytes.Clone(raw); binary.BigEndian.PutUint16(b[1:3], n); return b }
	cases := map[string]string{
		"no prefix":          base64.StdEncoding.EncodeToString(raw),
		"empty":              "ENC:",
		"bad base64":         "ENC:!!!not base64!!!",
		"bad padding bits":   "ENC:AR==",
		"truncated header":   enc64(raw[:2]),
		"truncated body":     enc64(raw[:len(raw)-20]),
		"truncated in key":   enc64(raw[:10]),
		"version 0":          enc64(withVersion(0)),
		"version 3":          enc64(withVersion(3)),
		"version 255":        enc64(withVersion(255)),
		"key length 0":       enc64(withKeyLen(0)),
		"over-long length":   enc64(withKeyLen(0xFFFF)),
		"length past nonce":  enc64(withKeyLen(uint16(len(raw) - 3 - 12))),
		"only header":        enc64([]byte{1, 0, 1}),
		"missing tag":        enc64(raw[:3+len(knownBlob)+12+5]),
		"base64 cut mid-way": "ENC:" + base64.StdEncoding.EncodeToString(raw)[:7],
		"line break":         "ENC:" + base64.StdEncoding.EncodeToString(raw)[:8] + "\n" + base64.StdEncoding.EncodeToString(raw)[8:],
		"carriage return":    "ENC:" + base64.StdEncoding.EncodeToString(raw) + "\r",
	}
	for name, stored := range cases {
		t.Run(name, func(t *testing.T) {
			keys := &fixedKeys{plain: knownKey, blob: knownBlob}
			_, err := enc.New(keys).Decrypt(context.Background(), spec, stored)
			if !errors.Is(err, enc.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if keys.decrypts != 0 {
				t.Fatalf("%d KMS calls for a malformed value", keys.decrypts)
			}
		})
	}
}

// Every single-bit change of a stored value fails to open; none yields a
// different plaintext.
func TestTamperedValuesNeverOpen(t *testing.T) {
	keys := &fixedKeys{plain: knownKey, blob: knownBlob}
	e := enc.New(keys)
	stored, err := e.Encrypt(context.Background(), spec, []byte("123-45-6789"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(stored) {
		for bit := range 8 {
			b := []byte(stored)
			b[i] ^= 1 << bit
			got, err := e.Decrypt(context.Background(), spec, string(b))
			if err == nil {
				t.Fatalf("byte %d bit %d: opened to %q", i, bit, got)
			}
		}
	}
}
