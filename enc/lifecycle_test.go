package enc_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
)

// plainProvider hides the optional interfaces of enctest.Provider, as a
// user's own provider without them would.
type plainProvider struct{ p *enctest.Provider }

func (p plainProvider) GenerateDataKey(ctx context.Context, k enc.KeyRef) ([]byte, []byte, error) {
	return p.p.GenerateDataKey(ctx, k)
}

func (p plainProvider) DecryptDataKey(ctx context.Context, k enc.KeyRef, b []byte) ([]byte, error) {
	return p.p.DecryptDataKey(ctx, k, b)
}

// ringOnly has a KeyRing but no ReEncrypter.
type ringOnly struct{ plainProvider }

func (p ringOnly) DecryptDataKeyFrom(ctx context.Context, k enc.KeyRef, prev []string, b []byte) ([]byte, enc.KeyOrigin, error) {
	return p.p.DecryptDataKeyFrom(ctx, k, prev, b)
}

// unsupportedReEncrypt has a ReEncrypter that always declines.
type unsupportedReEncrypt struct{ ringOnly }

func (unsupportedReEncrypt) ReEncryptDataKey(context.Context, enc.KeyRef, []string, []byte) ([]byte, enc.KeyOrigin, error) {
	return nil, enc.KeyOrigin{Index: -1}, errors.ErrUnsupported
}

var (
	specA       = enc.Spec{KeyID: "key-a"}
	specB       = enc.Spec{KeyID: "key-b"}
	specBFromA  = enc.Spec{KeyID: "key-b", PreviousKeyIDs: []string{"key-a"}}
	specBFromAv = enc.Spec{KeyID: "key-b", PreviousKeyIDs: []string{"key-a"}, Version: enc.Version2}
)

func sealMany(t *testing.T, e *enc.Encryptor, s enc.Spec, plains ...string) []string {
	t.Helper()
	reqs := make([]enc.SealRequest, len(plains))
	for i, p := range plains {
		reqs[i] = enc.SealRequest{Spec: s, Attribute: "ssn", Plaintext: []byte(p), Binding: ssnOfUser}
	}
	out, err := e.Seal(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPreviousKeysOpenWithOneDecryptPerDataKey(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	e := enc.New(keys)
	old := append(sealMany(t, e, specA, "1", "2"), sealMany(t, e, specA, "3")...) // two data keys under A
	cur := sealMany(t, e, specBFromA, "4")                                        // sealed under B
	before := e.Stats()

	var reqs []enc.OpenRequest
	for _, v := range append(old, cur...) {
		reqs = append(reqs, enc.OpenRequest{Spec: specBFromA, Attribute: "ssn", Stored: v})
	}
	plain, err := e.Open(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(plain[0]) + string(plain[1]) + string(plain[2]) + string(plain[3]); got != "1234" {
		t.Fatalf("opened %q", got)
	}
	if n := e.Stats().DecryptCalls - before.DecryptCalls; n != 3 {
		t.Fatalf("%d Decrypt calls for 3 data keys", n)
	}
	// New values are sealed under B only: a spec of B alone opens them, one of A does not.
	if _, err := e.Decrypt(ctx, specB, cur[0]); err != nil {
		t.Fatalf("value sealed by the rotated spec does not open under B: %v", err)
	}
	if _, err := e.Decrypt(ctx, specA, cur[0]); !errors.Is(err, enc.ErrInvalidCiphertext) {
		t.Fatalf("value sealed by the rotated spec opens under A: %v", err)
	}
}

func TestKeyNotAllowedNamesTheSpecKeyAndNoSecret(t *testing.T) {
	ctx := context.Background()
	e := enc.New(enctest.New())
	stored := sealMany(t, e, enc.Spec{KeyID: "key-c"}, "123-45-6789")[0]
	_, err := e.OpenOne(ctx, enc.OpenRequest{Spec: specBFromA, Attribute: "ssn", Stored: stored})
	if !errors.Is(err, enc.ErrKeyNotAllowed) {
		t.Fatalf("err = %v, want ErrKeyNotAllowed", err)
	}
	if ee, ok := enc.AsError(err); !ok || ee.KeyID != "key-b" || ee.Attribute != "ssn" || ee.Op != enc.OpDecrypt {
		t.Fatalf("error fields %+v", ee)
	}
	if strings.Contains(err.Error(), "123-45-6789") || strings.Contains(err.Error(), stored[len(enc.Prefix):]) {
		t.Fatalf("message holds a secret: %v", err)
	}
}

func TestPreviousKeysNeedAKeyRing(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	e := enc.New(plainProvider{keys})
	stored, err := enc.New(keys).Encrypt(ctx, specA, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Decrypt(ctx, specBFromA, stored)
	if err == nil || !strings.Contains(err.Error(), "KeyRing") {
		t.Fatalf("open: %v", err)
	}
	if _, err := e.Encrypt(ctx, specBFromA, []byte("x")); err == nil || !strings.Contains(err.Error(), "KeyRing") {
		t.Fatalf("seal: %v", err)
	}
	if st := e.Stats(); st.DecryptCalls+st.GenerateDataKeyCalls != 0 {
		t.Fatalf("KMS calls made: %+v", st)
	}
	// Specs without previous keys work as before.
	if got, err := e.Decrypt(ctx, specA, stored); err != nil || string(got) != "x" {
		t.Fatalf("plain provider: %q %v", got, err)
	}
}

// A data key opened for a spec that allows key A is not handed, from a
// cache or a session, to a spec that does not.
func TestCachedKeysStayWithinTheSpecsKeys(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	e := enc.New(keys, enc.WithCache(enc.CacheLimits{}))
	stored := sealMany(t, e, specA, "x")[0]
	if _, err := e.Decrypt(ctx, specBFromA, stored); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Decrypt(ctx, specB, stored); !errors.Is(err, enc.ErrInvalidCiphertext) {
		t.Fatalf("cached key served to a spec without the previous key: %v", err)
	}
	s := e.Session()
	defer s.Close()
	for _, spec := range []enc.Spec{specBFromA, {KeyID: "key-b", PreviousKeyIDs: []string{"key-c"}}} {
		_, err := s.Open(ctx, []enc.OpenRequest{{Spec: spec, Stored: stored}})
		if (spec.PreviousKeyIDs[0] == "key-a") != (err == nil) {
			t.Fatalf("session, previous %v: %v", spec.PreviousKeyIDs, err)
		}
	}
}

func TestAliasRepointedWithPreviousKey(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	keys.SetAlias("alias/app", "key-a")
	e := enc.New(keys)
	old := sealMany(t, e, enc.Spec{KeyID: "alias/app"}, "old")[0]
	keys.SetAlias("alias/app", "key-b")
	spec := enc.Spec{KeyID: "alias/app", PreviousKeyIDs: []string{"key-a"}}
	cur := sealMany(t, e, spec, "new")[0]
	if _, err := e.Decrypt(ctx, enc.Spec{KeyID: "alias/app"}, old); err == nil {
		t.Fatal("an old value opens under the re-pointed alias without a previous key")
	}
	for _, v := range []string{old, cur} {
		if _, err := e.Decrypt(ctx, spec, v); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMinVersionRefusesOlderEnvelopesBeforeKMS(t *testing.T) {
	ctx := context.Background()
	e := enc.New(enctest.New())
	v1 := sealMany(t, e, specA, "x")[0]
	s := enc.Spec{KeyID: "key-a", Version: enc.Version2, MinVersion: enc.Version2}
	before := e.Stats().DecryptCalls
	_, err := e.OpenOne(ctx, enc.OpenRequest{Spec: s, Attribute: "ssn", Stored: v1, Binding: ssnOfUser})
	if !errors.Is(err, enc.ErrVersionTooOld) {
		t.Fatalf("err = %v", err)
	}
	if ee, _ := enc.AsError(err); ee == nil || ee.Attribute != "ssn" {
		t.Fatalf("not labelled: %v", err)
	}
	if e.Stats().DecryptCalls != before {
		t.Fatal("a too-old envelope reached KMS")
	}
	v2 := sealMany(t, e, s, "y")[0]
	if _, err := e.OpenOne(ctx, enc.OpenRequest{Spec: s, Stored: v2, Binding: ssnOfUser}); err != nil {
		t.Fatal(err)
	}
}

// body returns the bytes of a stored value after its encrypted data key:
// nonce, ciphertext and tag.
func body(t *testing.T, stored string) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(stored, enc.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	return raw[3+int(raw[1])<<8+int(raw[2]):]
}

func rewrapAll(e *enc.Encryptor, s enc.Spec, stored ...string) ([]string, []error) {
	reqs := make([]enc.RewrapRequest, len(stored))
	for i, v := range stored {
		reqs[i] = enc.RewrapRequest{Spec: s, Attribute: "ssn", Stored: v, Binding: ssnOfUser}
	}
	return e.Rewrap(context.Background(), reqs)
}

func noErrors(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
}

func TestRewrapVersion1ByReEncrypt(t *testing.T) {
	keys := enctest.New()
	e := enc.New(keys)
	old := append(sealMany(t, e, specA, "1", "2"), sealMany(t, e, specA, "3")...)
	cur := sealMany(t, e, specB, "4")
	before := e.Stats()
	out, errs := rewrapAll(e, specBFromA, append(old, cur...)...)
	noErrors(t, errs)
	st := e.Stats()
	if n := st.ReEncryptCalls - before.ReEncryptCalls; n != 3 {
		t.Fatalf("%d ReEncrypt calls, want one per data key (3)", n)
	}
	if st.DecryptCalls != before.DecryptCalls || st.GenerateDataKeyCalls != before.GenerateDataKeyCalls {
		t.Fatalf("ReEncrypt path decrypted or generated: %+v", st)
	}
	if out[3] != "" {
		t.Fatal("a value under the current key was rewritten")
	}
	for i, v := range out[:3] {
		if string(body(t, v)) != string(body(t, old[i])) {
			t.Fatalf("value %d: body changed", i)
		}
		if p, err := e.Decrypt(context.Background(), specB, v); err != nil || string(p) != string(rune('1'+i)) {
			t.Fatalf("value %d opens under B as %q, %v", i, p, err)
		}
	}
}

func TestRewrapToVersion2ByDecryptAndSeal(t *testing.T) {
	e := enc.New(enctest.New())
	old := append(sealMany(t, e, specA, "1", "2"), sealMany(t, e, specA, "3")...)
	cur := sealMany(t, e, specBFromAv, "4")
	before := e.Stats()
	out, errs := rewrapAll(e, specBFromAv, append(old, cur...)...)
	noErrors(t, errs)
	st := e.Stats()
	if st.DecryptCalls-before.DecryptCalls != 3 || st.GenerateDataKeyCalls-before.GenerateDataKeyCalls != 1 || st.ReEncryptCalls != 0 {
		t.Fatalf("calls: %+v, before %+v", st, before)
	}
	if out[3] != "" {
		t.Fatal("a current version-2 value was rewritten")
	}
	for i, v := range out[:3] {
		if ver, _ := enc.EnvelopeVersion(v); ver != enc.Version2 {
			t.Fatalf("value %d is version %d", i, ver)
		}
		p, err := e.OpenOne(context.Background(), enc.OpenRequest{Spec: enc.Spec{KeyID: "key-b"}, Stored: v, Binding: ssnOfUser})
		if err != nil || string(p) != string(rune('1'+i)) {
			t.Fatalf("value %d: %q %v", i, p, err)
		}
	}
}

func TestRewrapFallsBackToDecryptAndSeal(t *testing.T) {
	for name, p := range map[string]func(*enctest.Provider) enc.KeyProvider{
		"no ReEncrypter":        func(k *enctest.Provider) enc.KeyProvider { return ringOnly{plainProvider{k}} },
		"ReEncrypt unsupported": func(k *enctest.Provider) enc.KeyProvider { return unsupportedReEncrypt{ringOnly{plainProvider{k}}} },
	} {
		t.Run(name, func(t *testing.T) {
			keys := enctest.New()
			old := sealMany(t, enc.New(keys), specA, "1", "")
			e := enc.New(p(keys))
			out, errs := rewrapAll(e, specBFromA, old...)
			noErrors(t, errs)
			if st := e.Stats(); st.ReEncryptCalls != 0 || st.DecryptCalls != 1 || st.GenerateDataKeyCalls != 1 {
				t.Fatalf("calls %+v", st)
			}
			for i, want := range []string{"1", ""} {
				if p, err := e.Decrypt(context.Background(), specB, out[i]); err != nil || string(p) != want {
					t.Fatalf("value %d: %q %v", i, p, err)
				}
			}
		})
	}
}

func TestRewrapErrorsAreEachRequests(t *testing.T) {
	e := enc.New(enctest.New())
	good := sealMany(t, e, specA, "1")[0]
	other := sealMany(t, e, enc.Spec{KeyID: "key-c"}, "2")[0]
	out, errs := rewrapAll(e, specBFromA, good, other, "ENC:AAAA", "plain")
	if errs[0] != nil || out[0] == "" {
		t.Fatalf("good value: %q %v", out[0], errs[0])
	}
	for i, want := range []error{nil, enc.ErrKeyNotAllowed, enc.ErrMalformed, enc.ErrMalformed} {
		if want != nil && (!errors.Is(errs[i], want) || out[i] != "") {
			t.Fatalf("request %d: %q %v, want %v", i, out[i], errs[i], want)
		}
		if ee, ok := enc.AsError(errs[i]); want != nil && (!ok || ee.Op != enc.OpRewrap || ee.Attribute != "ssn" || ee.KeyID != "key-b") {
			t.Fatalf("request %d: %+v", i, ee)
		}
	}
}

func TestRewrapNeedsReadWriteBeforeKMS(t *testing.T) {
	e := enc.New(enctest.New())
	v := sealMany(t, e, specA, "1")[0]
	before := e.Stats()
	for mode, want := range map[enc.Mode]error{enc.ReadOnly: enc.ErrReadOnly, enc.WriteOnly: enc.ErrWriteOnly} {
		s := specBFromA
		s.Mode = mode
		if _, errs := rewrapAll(e, s, v); !errors.Is(errs[0], want) {
			t.Fatalf("%v: %v", mode, errs[0])
		}
	}
	if st := e.Stats(); st != before {
		t.Fatalf("KMS calls made: %+v", st)
	}
}

func TestRewrapHonoursMinVersionAndContext(t *testing.T) {
	e := enc.New(enctest.New())
	v1 := sealMany(t, e, specA, "1")[0]
	s := specBFromAv
	s.MinVersion = enc.Version2
	if _, errs := rewrapAll(e, s, v1); !errors.Is(errs[0], enc.ErrVersionTooOld) {
		t.Fatalf("MinVersion: %v", errs[0])
	}
	withCtx := specBFromA
	withCtx.Context = map[string]string{"tenant": "acme"}
	if _, errs := rewrapAll(e, withCtx, v1); !errors.Is(errs[0], enc.ErrInvalidCiphertext) {
		t.Fatalf("other context: %v", errs[0])
	}
}
