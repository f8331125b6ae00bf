package enc

import (
	"bytes"
	"testing"
)

// FuzzParseEnvelope checks the parser on arbitrary input: no panic, and any
// input it accepts is the one canonical stored form of what it parsed, with
// parts that fit the layout.
func FuzzParseEnvelope(f *testing.F) {
	for _, s := range []string{
		"", "ENC:", "ENC:AQ==", "ENC:AQAB", "ENC:AgAB" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		envelope{version: Version1, encryptedKey: []byte("k"), nonce: make([]byte, nonceSize), ciphertext: make([]byte, tagSize)}.String(),
		envelope{version: Version2, encryptedKey: bytes.Repeat([]byte{7}, 184), nonce: make([]byte, nonceSize), ciphertext: make([]byte, tagSize+11)}.String(),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stored string) {
		env, err := parseEnvelope(stored)
		version, verr := EnvelopeVersion(stored)
		if err != nil {
			return
		}
		if verr != nil || version != env.version {
			t.Fatalf("EnvelopeVersion = %d, %v; parsed version %d", version, verr, env.version)
		}
		if env.version != Version1 && env.version != Version2 {
			t.Fatalf("accepted version %d", env.version)
		}
		if len(env.encryptedKey) == 0 || len(env.nonce) != nonceSize || len(env.ciphertext) < tagSize {
			t.Fatalf("parts of %d, %d, %d bytes", len(env.encryptedKey), len(env.nonce), len(env.ciphertext))
		}
		if again := env.String(); again != stored {
			t.Fatalf("%q parsed and re-encoded as %q", stored, again)
		}
	})
}
