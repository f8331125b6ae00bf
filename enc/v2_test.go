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
	"github.com/dynoseal/dynoseal/enc/enctest"
)

var (
	specV2    = enc.Spec{KeyID: "alias/test", Version: enc.Version2}
	userKey   = []enc.KeyAttribute{enc.StringKey("pk", "USER#123"), enc.NumberKey("sk", "7")}
	ssnOfUser = enc.Binding{Attribute: "ssn", Key: userKey}
)

// repeatReader is a nonce source that makes every nonce the same known bytes.
type repeatReader []byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r[i%len(r)]
	}
	return len(p), nil
}

func seal(t *testing.T, e *enc.Encryptor, r enc.SealRequest) string {
	t.Helper()
	stored, err := e.SealOne(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

// The additional data of a version-2 value, spelled out independently of
// the package: header, attribute, key count, then each key attribute in
// name order as name, type, value, every length a big-endian uint32.
func TestVersion2AdditionalDataLayout(t *testing.T) {
	keys := &fixedKeys{plain: knownKey, blob: knownBlob}
	e := enc.New(keys, enc.WithRandom(repeatReader(knownNonce)))
	// Key attributes given out of order: the layout sorts them by name.
	stored := seal(t, e, enc.SealRequest{Spec: specV2, Plaintext: []byte("123-45-6789"),
		Binding: enc.Binding{Attribute: "ssn", Key: []enc.KeyAttribute{enc.NumberKey("sk", "7"), enc.StringKey("pk", "USER#123")}}})

	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(stored, enc.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	header := raw[:3+len(knownBlob)]
	if header[0] != 2 || int(binary.BigEndian.Uint16(header[1:3])) != len(knownBlob) || !bytes.Equal(header[3:], knownBlob) {
		t.Fatalf("header % x", header)
	}
	nonce := raw[len(header) : len(header)+12]
	if !bytes.Equal(nonce, knownNonce) {
		t.Fatalf("nonce % x", nonce)
	}
	u32 := func(n int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }
	var aad []byte
	aad = append(aad, header...)
	aad = append(append(aad, u32(3)...), "ssn"...)
	aad = append(aad, u32(2)...)
	aad = append(append(aad, u32(2)...), "pk"...)
	aad = append(aad, 'S')
	aad = append(append(aad, u32(8)...), "USER#123"...)
	aad = append(append(aad, u32(2)...), "sk"...)
	aad = append(aad, 'N')
	aad = append(append(aad, u32(3)...), "7E1"...) // 7 = 0.7 × 10^1

	block, _ := aes.NewCipher(knownKey)
	gcm, _ := cipher.NewGCM(block)
	plain, err := gcm.Open(nil, nonce, raw[len(header)+12:], aad)
	if err != nil || string(plain) != "123-45-6789" {
		t.Fatalf("independent open: %q, %v", plain, err)
	}
	if _, err := gcm.Open(nil, nonce, raw[len(header)+12:], nil); err == nil {
		t.Fatal("version-2 value opened without additional data")
	}
}

func TestVersion2RoundTripAndEquivalentBindings(t *testing.T) {
	ctx := context.Background()
	e := enc.New(enctest.New())
	stored := seal(t, e, enc.SealRequest{Spec: specV2, Plaintext: []byte("secret"), Binding: ssnOfUser})
	if v, err := enc.EnvelopeVersion(stored); err != nil || v != enc.Version2 {
		t.Fatalf("EnvelopeVersion = %d, %v", v, err)
	}
	same := map[string]enc.Binding{
		"as sealed":          ssnOfUser,
		"keys in any order":  {Attribute: "ssn", Key: []enc.KeyAttribute{userKey[1], userKey[0]}},
		"number spelt 7.0":   {Attribute: "ssn", Key: []enc.KeyAttribute{userKey[0], enc.NumberKey("sk", "7.0")}},
		"number spelt 0.7e1": {Attribute: "ssn", Key: []enc.KeyAttribute{userKey[0], enc.NumberKey("sk", "0.7e1")}},
	}
	for name, b := range same {
		got, err := e.OpenOne(ctx, enc.OpenRequest{Spec: specV2, Stored: stored, Binding: b})
		if err != nil || string(got) != "secret" {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
}

// A version-2 value opens only where it was sealed: any change of attribute
// or key fails as a bad ciphertext, like tampering does.
func TestVersion2RejectsAnotherPlace(t *testing.T) {
	ctx := context.Background()
	e := enc.New(enctest.New())
	stored := seal(t, e, enc.SealRequest{Spec: specV2, Plaintext: []byte("secret"), Binding: ssnOfUser})
	other := map[string]enc.Binding{
		"other attribute":         {Attribute: "card", Key: userKey},
		"other hash key":          {Attribute: "ssn", Key: []enc.KeyAttribute{enc.StringKey("pk", "USER#124"), userKey[1]}},
		"other range key":         {Attribute: "ssn", Key: []enc.KeyAttribute{userKey[0], enc.NumberKey("sk", "8")}},
		"range key missing":       {Attribute: "ssn", Key: userKey[:1]},
		"extra key attribute":     {Attribute: "ssn", Key: append(append([]enc.KeyAttribute{}, userKey...), enc.StringKey("gsi", "x"))},
		"key type changed":        {Attribute: "ssn", Key: []enc.KeyAttribute{enc.BinaryKey("pk", []byte("USER#123")), userKey[1]}},
		"number as string":        {Attribute: "ssn", Key: []enc.KeyAttribute{userKey[0], enc.StringKey("sk", "7")}},
		"key attribute renamed":   {Attribute: "ssn", Key: []enc.KeyAttribute{enc.StringKey("id", "USER#123"), userKey[1]}},
		"nested path":             {Attribute: "profile.ssn", Key: userKey},
		"value moved into a name": {Attribute: "ssn", Key: []enc.KeyAttribute{enc.StringKey("pk", "USER#12"), enc.NumberKey("sk", "37")}},
	}
	for name, b := range other {
		_, err := e.OpenOne(ctx, enc.OpenRequest{Spec: specV2, Stored: stored, Binding: b})
		if !errors.Is(err, enc.ErrInvalidCiphertext) {
			t.Errorf("%s: err = %v, want ErrInvalidCiphertext", name, err)
		}
	}
}

func TestVersion2WithoutBindingIsAnErrorBeforeKMS(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	e := enc.New(keys)
	bad := map[string]enc.Binding{
		"none":               {},
		"no attribute":       {Key: userKey},
		"no key":             {Attribute: "ssn"},
		"unnamed key":        {Attribute: "ssn", Key: []enc.KeyAttribute{enc.StringKey("", "x")}},
		"key twice":          {Attribute: "ssn", Key: []enc.KeyAttribute{userKey[0], userKey[0]}},
		"not a number":       {Attribute: "ssn", Key: []enc.KeyAttribute{enc.NumberKey("sk", "seven")}},
		"unknown key type":   {Attribute: "ssn", Key: []enc.KeyAttribute{{Name: "pk", Type: 'L', Value: []byte("x")}}},
		"number with spaces": {Attribute: "ssn", Key: []enc.KeyAttribute{enc.NumberKey("sk", " 7")}},
	}
	for name, b := range bad {
		_, err := e.SealOne(ctx, enc.SealRequest{Spec: specV2, Attribute: "ssn", Plaintext: []byte("x"), Binding: b})
		if !errors.Is(err, enc.ErrBinding) {
			t.Errorf("seal, %s: err = %v, want ErrBinding", name, err)
		}
	}
	if _, err := e.Encrypt(ctx, specV2, []byte("x")); !errors.Is(err, enc.ErrBinding) {
		t.Errorf("Encrypt with a version-2 spec: %v", err)
	}
	if n := keys.Generates.Load(); n != 0 {
		t.Fatalf("%d GenerateDataKey calls for requests without a binding", n)
	}

	stored := seal(t, e, enc.SealRequest{Spec: specV2, Plaintext: []byte("x"), Binding: ssnOfUser})
	for name, b := range bad {
		_, err := e.OpenOne(ctx, enc.OpenRequest{Spec: specV2, Stored: stored, Binding: b})
		if !errors.Is(err, enc.ErrBinding) {
			t.Errorf("open, %s: err = %v, want ErrBinding", name, err)
		}
	}
	// The value's version decides, not the spec's: a version-1 spec needs
	// the binding of a version-2 value too.
	if _, err := e.Decrypt(ctx, spec, stored); !errors.Is(err, enc.ErrBinding) {
		t.Errorf("Decrypt of a version-2 value: %v", err)
	}
	if n := keys.Decrypts.Load(); n != 0 {
		t.Fatalf("%d Decrypt calls for requests without a binding", n)
	}
}

// Moving a spec to version 2 keeps its version-1 values readable, and moving
// back keeps version-2 values readable given their binding.
func TestVersionMigration(t *testing.T) {
	ctx := context.Background()
	e := enc.New(enctest.New())
	v1, err := e.Encrypt(ctx, spec, []byte("old"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.OpenOne(ctx, enc.OpenRequest{Spec: specV2, Stored: v1})
	if err != nil || string(got) != "old" {
		t.Fatalf("v2 spec opening a v1 value without binding: %q, %v", got, err)
	}
	got, err = e.OpenOne(ctx, enc.OpenRequest{Spec: specV2, Stored: v1, Binding: ssnOfUser})
	if err != nil || string(got) != "old" {
		t.Fatalf("v2 spec opening a v1 value with a binding: %q, %v", got, err)
	}
	v2 := seal(t, e, enc.SealRequest{Spec: specV2, Plaintext: []byte("new"), Binding: ssnOfUser})
	got, err = e.OpenOne(ctx, enc.OpenRequest{Spec: spec, Stored: v2, Binding: ssnOfUser})
	if err != nil || string(got) != "new" {
		t.Fatalf("v1 spec opening a v2 value: %q, %v", got, err)
	}
	// A version-1 spec ignores a binding when sealing.
	plain := seal(t, e, enc.SealRequest{Spec: spec, Plaintext: []byte("x"), Binding: ssnOfUser})
	if v, _ := enc.EnvelopeVersion(plain); v != enc.Version1 {
		t.Fatalf("version-1 spec sealed version %d", v)
	}
}

func TestSpecVersionValidation(t *testing.T) {
	_, err := enc.New(enctest.New()).Encrypt(context.Background(), enc.Spec{KeyID: "k", Version: 3}, []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "version 3") {
		t.Fatalf("err = %v", err)
	}
	if err := (enc.Spec{KeyID: "k", Version: 1}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestEnvelopeVersion(t *testing.T) {
	for stored, want := range map[string]string{
		"plain":    "prefix",
		"ENC:":     "shorter",
		"ENC:AQ":   "shorter",
		"ENC:!!!":  "shorter",
		"ENC:!!!!": "base64",
		"ENC:AwAA": "version 3",
	} {
		if _, err := enc.EnvelopeVersion(stored); !errors.Is(err, enc.ErrMalformed) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v", stored, err)
		}
	}
	if v, err := enc.EnvelopeVersion("ENC:AQ=="); err != nil || v != 1 {
		t.Errorf("ENC:AQ== = %d, %v", v, err)
	}
}

func TestCanonicalNumber(t *testing.T) {
	same := [][]string{
		{"42", "42.0", "042", "4.2e1", "4.2E+1", "+42", "420e-1", "0.42e2"},
		{"-0.5", "-.5", "-5e-1", "-0.50"},
		{"0", "0.0", "-0", "0e10", ".0", "0."},
		{"1e130", "10e129"},
	}
	for _, group := range same {
		want, err := enc.CanonicalNumber(group[0])
		if err != nil {
			t.Fatalf("%s: %v", group[0], err)
		}
		for _, s := range group[1:] {
			if got, err := enc.CanonicalNumber(s); err != nil || got != want {
				t.Errorf("%s = %q, %v; %s = %q", s, got, err, group[0], want)
			}
		}
	}
	distinct := []string{"42", "4.2", "-42", "43", "0.042", "1e130", "1e-130"}
	seen := map[string]string{}
	for _, s := range distinct {
		c, err := enc.CanonicalNumber(s)
		if err != nil {
			t.Fatal(err)
		}
		if prev, dup := seen[c]; dup {
			t.Errorf("%s and %s both give %q", s, prev, c)
		}
		seen[c] = s
	}
	for _, s := range []string{"", "-", "+", ".", "e5", "1e", "1e+", "1.2.3", "0x10", "1_000", "NaN", "Inf", "1e99999999", "--1", "1 "} {
		if c, err := enc.CanonicalNumber(s); err == nil {
			t.Errorf("%q accepted as %q", s, c)
		}
	}
}

// Every single-bit change of a version-2 value fails to open.
func TestTamperedVersion2ValuesNeverOpen(t *testing.T) {
	ctx := context.Background()
	keys := &fixedKeys{plain: knownKey, blob: knownBlob}
	e := enc.New(keys)
	stored := seal(t, e, enc.SealRequest{Spec: specV2, Plaintext: []byte("123-45-6789"), Binding: ssnOfUser})
	for i := range len(stored) {
		for bit := range 8 {
			b := []byte(stored)
			b[i] ^= 1 << bit
			for _, s := range []enc.Spec{specV2, spec} {
				got, err := e.OpenOne(ctx, enc.OpenRequest{Spec: s, Stored: string(b), Binding: ssnOfUser})
				if err == nil {
					t.Fatalf("byte %d bit %d: opened to %q", i, bit, got)
				}
			}
		}
	}
	// The version byte is authenticated: relabelling a version-2 value as
	// version 1 does not open it without its binding.
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(stored, enc.Prefix))
	raw[0] = 1
	relabelled := enc.Prefix + base64.StdEncoding.EncodeToString(raw)
	if _, err := e.Decrypt(ctx, spec, relabelled); !errors.Is(err, enc.ErrInvalidCiphertext) {
		t.Fatalf("relabelled as version 1: %v", err)
	}
}
