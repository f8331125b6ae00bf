package enc_test

import (
	"context"
	"errors"
	"testing"

	"github.com/dynoseal/dynoseal/enc"
)

// fuzzSeeds returns valid values of both versions, sealed reproducibly
// under the test's known data key, and the plaintext each opens to.
func fuzzSeeds(f *testing.F) map[string]string {
	f.Helper()
	keys := &fixedKeys{plain: knownKey, blob: knownBlob}
	e := enc.New(keys, enc.WithRandom(repeatReader(knownNonce)))
	ctx := context.Background()
	valid := map[string]string{}
	for _, plain := range []string{"", "123-45-6789", "ünïcødé ✓", string(make([]byte, 300))} {
		v1, err := e.Encrypt(ctx, spec, []byte(plain))
		if err != nil {
			f.Fatal(err)
		}
		v2, err := e.SealOne(ctx, enc.SealRequest{Spec: specV2, Plaintext: []byte(plain), Binding: ssnOfUser})
		if err != nil {
			f.Fatal(err)
		}
		valid[v1], valid[v2] = plain, plain
	}
	return valid
}

// FuzzDecrypt opens arbitrary strings as stored values. It must never panic;
// every failure is an *enc.Error for a malformed or unauthentic value; and no
// string opens except the exact values that were sealed.
func FuzzDecrypt(f *testing.F) {
	valid := fuzzSeeds(f)
	for s := range valid {
		f.Add(s)
	}
	for _, s := range []string{"", "ENC:", "ENC:AQ==", "ENC:AgAA", "ENC:AQAB", "plain text", "ENC:!!!!", "ENC:AQ\n=="} {
		f.Add(s)
	}
	keys := &fixedKeys{plain: knownKey, blob: knownBlob}
	e := enc.New(keys)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, stored string) {
		opens := []func() ([]byte, error){
			func() ([]byte, error) { return e.Decrypt(ctx, spec, stored) },
			func() ([]byte, error) {
				return e.OpenOne(ctx, enc.OpenRequest{Spec: specV2, Stored: stored, Binding: ssnOfUser})
			},
		}
		for _, open := range opens {
			got, err := open()
			if err == nil {
				want, ok := valid[stored]
				if !ok || string(got) != want {
					t.Fatalf("%q opened to %q", stored, got)
				}
				continue
			}
			var encErr *enc.Error
			if !errors.As(err, &encErr) {
				t.Fatalf("%q: error %v is not an *enc.Error", stored, err)
			}
			if !errors.Is(err, enc.ErrMalformed) && !errors.Is(err, enc.ErrInvalidCiphertext) && !errors.Is(err, enc.ErrBinding) {
				t.Fatalf("%q: unexpected error %v", stored, err)
			}
		}
		if _, err := enc.EnvelopeVersion(stored); err != nil && !errors.Is(err, enc.ErrMalformed) {
			t.Fatalf("EnvelopeVersion(%q): %v", stored, err)
		}
	})
}
