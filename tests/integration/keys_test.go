package integration

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/dynoseal/dynoseal/dynotest"
	"github.com/dynoseal/dynoseal/enc"
)

// keyARN asks KMS for the ARN of a key.
func keyARN(t *testing.T, env *dynotest.Env, id string) string {
	t.Helper()
	out, err := env.KMS.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String(id)})
	if err != nil {
		t.Fatalf("describe %s: %v", id, err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

// sealUnder seals each plaintext under spec, one Seal call (one data key) per group.
func sealUnder(t *testing.T, e *enc.Encryptor, spec enc.Spec, groups ...[]string) []string {
	t.Helper()
	var out []string
	for _, g := range groups {
		reqs := make([]enc.SealRequest, len(g))
		for i, p := range g {
			reqs[i] = enc.SealRequest{Spec: spec, Attribute: "ssn", Plaintext: []byte(p), Binding: bindingOf("USER#1")}
		}
		stored, err := e.Seal(context.Background(), reqs)
		if err != nil {
			t.Fatalf("seal under %s: %v", spec.KeyID, err)
		}
		out = append(out, stored...)
	}
	return out
}

func bindingOf(pk string) enc.Binding {
	return enc.Binding{Attribute: "ssn", Key: []enc.KeyAttribute{enc.StringKey("pk", pk)}}
}

func openAll(t *testing.T, e *enc.Encryptor, spec enc.Spec, stored []string) []string {
	t.Helper()
	reqs := make([]enc.OpenRequest, len(stored))
	for i, v := range stored {
		reqs[i] = enc.OpenRequest{Spec: spec, Attribute: "ssn", Stored: v, Binding: bindingOf("USER#1")}
	}
	plain, err := e.Open(context.Background(), reqs)
	if err != nil {
		t.Fatalf("open under %s %v: %v", spec.KeyID, spec.PreviousKeyIDs, err)
	}
	out := make([]string, len(plain))
	for i, p := range plain {
		out[i] = string(p)
	}
	return out
}

// Rotation: values sealed under key A open under a spec moved to key B
// with A as a previous key, with one Decrypt per data key; new values are
// sealed under B.
func TestRotationWithPreviousKeys(t *testing.T) {
	f := newFixture(t)
	keyB, _ := f.env.Key(t)
	e := f.env.Encryptor()
	old := sealUnder(t, e, enc.Spec{KeyID: f.keyID}, []string{"1", "2"}, []string{"3"})
	spec := enc.Spec{KeyID: keyB, PreviousKeyIDs: []string{f.keyID}}
	cur := sealUnder(t, e, spec, []string{"4"})

	before := e.Stats()
	if got := strings.Join(openAll(t, e, spec, append(old, cur...)), ""); got != "1234" {
		t.Fatalf("opened %q", got)
	}
	if n := e.Stats().DecryptCalls - before.DecryptCalls; n != 3 {
		t.Fatalf("%d Decrypt calls for 3 data keys", n)
	}
	if got := openAll(t, e, enc.Spec{KeyID: keyB}, cur); got[0] != "4" {
		t.Fatalf("new value under B: %q", got)
	}
	if _, err := e.Decrypt(context.Background(), enc.Spec{KeyID: f.keyID}, cur[0]); err == nil {
		t.Fatal("a value sealed by the rotated spec opens under A")
	}
}

func TestKeyNotListedIsNotAllowed(t *testing.T) {
	f := newFixture(t)
	keyB, _ := f.env.Key(t)
	keyC, _ := f.env.Key(t)
	e := f.env.Encryptor()
	stored := sealUnder(t, e, enc.Spec{KeyID: keyC}, []string{"123-45-6789"})[0]
	spec := enc.Spec{KeyID: keyB, PreviousKeyIDs: []string{f.keyID}}
	_, err := e.OpenOne(context.Background(), enc.OpenRequest{Spec: spec, Attribute: "ssn", Stored: stored})
	if !errors.Is(err, enc.ErrKeyNotAllowed) {
		t.Fatalf("err = %v, want ErrKeyNotAllowed", err)
	}
	if ee, ok := enc.AsError(err); !ok || ee.KeyID != keyB || strings.Contains(err.Error(), "123-45-6789") {
		t.Fatalf("error %v", err)
	}
}

// Re-pointing an alias: values sealed while the alias named A still open
// once it names B, when the spec lists A (by ARN) as a previous key.
func TestRepointedAliasWithPreviousKey(t *testing.T) {
	f := newFixture(t)
	keyB, _ := f.env.Key(t)
	arnA := keyARN(t, f.env, f.keyID)
	e := f.env.Encryptor()
	old := sealUnder(t, e, enc.Spec{KeyID: f.alias}, []string{"old"})
	if _, err := f.env.KMS.UpdateAlias(context.Background(), &kms.UpdateAliasInput{AliasName: aws.String(f.alias), TargetKeyId: aws.String(keyB)}); err != nil {
		t.Fatalf("re-point alias: %v", err)
	}
	spec := enc.Spec{KeyID: f.alias, PreviousKeyIDs: []string{arnA}}
	cur := sealUnder(t, e, spec, []string{"new"})
	if got := strings.Join(openAll(t, e, spec, append(old, cur...)), ","); got != "old,new" {
		t.Fatalf("opened %q", got)
	}
	if got := openAll(t, e, enc.Spec{KeyID: keyB}, cur); got[0] != "new" {
		t.Fatalf("new value is not under B: %q", got)
	}
	if st := e.Stats(); st.DescribeKeyCalls != 1 {
		t.Fatalf("%d DescribeKey calls, want 1 for the alias", st.DescribeKeyCalls)
	}
}

func envelopeBody(t *testing.T, stored string) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(stored, enc.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	return raw[3+int(raw[1])<<8+int(raw[2]):]
}

func rewrapAll(t *testing.T, e *enc.Encryptor, spec enc.Spec, stored []string) []string {
	t.Helper()
	reqs := make([]enc.RewrapRequest, len(stored))
	for i, v := range stored {
		reqs[i] = enc.RewrapRequest{Spec: spec, Attribute: "ssn", Stored: v, Binding: bindingOf("USER#1")}
	}
	out, errs := e.Rewrap(context.Background(), reqs)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("rewrap %d: %v", i, err)
		}
	}
	return out
}

func TestRewrapToAnotherKeyByReEncrypt(t *testing.T) {
	f := newFixture(t)
	keyB, _ := f.env.Key(t)
	e := f.env.Encryptor()
	old := sealUnder(t, e, enc.Spec{KeyID: f.keyID}, []string{"1", "2"}, []string{"3"})
	spec := enc.Spec{KeyID: keyB, PreviousKeyIDs: []string{f.keyID}}
	cur := sealUnder(t, e, spec, []string{"4"})
	before := e.Stats()
	out := rewrapAll(t, e, spec, append(old, cur...))
	st := e.Stats()
	if st.ReEncryptCalls-before.ReEncryptCalls != 3 || st.DecryptCalls != before.DecryptCalls || st.GenerateDataKeyCalls != before.GenerateDataKeyCalls {
		t.Fatalf("calls %+v, before %+v; want 3 ReEncrypt and nothing else", st, before)
	}
	if out[3] != "" {
		t.Fatal("a value under the current key was rewritten")
	}
	for i, v := range out[:3] {
		if string(envelopeBody(t, v)) != string(envelopeBody(t, old[i])) {
			t.Fatalf("value %d: nonce or ciphertext changed", i)
		}
	}
	if got := strings.Join(openAll(t, e, enc.Spec{KeyID: keyB}, out[:3]), ""); got != "123" {
		t.Fatalf("rewrapped values open under B as %q", got)
	}
}

func TestRewrapToVersion2ByDecryptAndSeal(t *testing.T) {
	f := newFixture(t)
	keyB, _ := f.env.Key(t)
	e := f.env.Encryptor()
	old := sealUnder(t, e, enc.Spec{KeyID: f.keyID}, []string{"1", "2"}, []string{"3"})
	spec := enc.Spec{KeyID: keyB, PreviousKeyIDs: []string{f.keyID}, Version: enc.Version2}
	cur := sealUnder(t, e, spec, []string{"4"})
	before := e.Stats()
	out := rewrapAll(t, e, spec, append(old, cur...))
	st := e.Stats()
	if st.DecryptCalls-before.DecryptCalls != 3 || st.GenerateDataKeyCalls-before.GenerateDataKeyCalls != 1 || st.ReEncryptCalls != 0 {
		t.Fatalf("calls %+v, before %+v; want 3 Decrypt and 1 GenerateDataKey", st, before)
	}
	if out[3] != "" {
		t.Fatal("a current version-2 value was rewritten")
	}
	for i, v := range out[:3] {
		if ver, _ := enc.EnvelopeVersion(v); ver != enc.Version2 {
			t.Fatalf("value %d is version %d", i, ver)
		}
	}
	if got := strings.Join(openAll(t, e, enc.Spec{KeyID: keyB, MinVersion: 0}, out[:3]), ""); got != "123" {
		t.Fatalf("rewrapped values open under B as %q", got)
	}
}
