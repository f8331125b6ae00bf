package kmsx_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/kmsx"
)

const (
	arnA = arnPrefix + "aaaa"
	arnB = arnPrefix + "bbbb"
	arnC = arnPrefix + "cccc"
)

func (f *fakeKMS) bodies(op string) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []map[string]any
	for _, r := range f.requests {
		if r.Op == op {
			out = append(out, r.Body)
		}
	}
	return out
}

func TestPreviousKeysDecryptWithoutKeyIdAndCheckTheKey(t *testing.T) {
	ctx := context.Background()
	fake := newFakeKMS(t)
	e := enc.New(kmsx.NewFromConfig(fake.config()))
	fake.point("alias/app", arnB)
	old, err := e.Encrypt(ctx, enc.Spec{KeyID: "aaaa"}, []byte(plaintext))
	if err != nil {
		t.Fatal(err)
	}
	other, err := e.Encrypt(ctx, enc.Spec{KeyID: arnC}, []byte(plaintext))
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []enc.Spec{
		{KeyID: arnB, PreviousKeyIDs: []string{arnA}},        // by ARN
		{KeyID: "bbbb", PreviousKeyIDs: []string{"aaaa"}},    // by key ID
		{KeyID: "alias/app", PreviousKeyIDs: []string{arnA}}, // current key by alias
	} {
		if got, err := e.Decrypt(ctx, spec, old); err != nil || string(got) != plaintext {
			t.Fatalf("%+v: %q %v", spec, got, err)
		}
		_, err := e.Decrypt(ctx, spec, other)
		if !errors.Is(err, enc.ErrKeyNotAllowed) || !strings.Contains(err.Error(), spec.KeyID) {
			t.Fatalf("%+v: key C: %v", spec, err)
		}
	}
	for _, body := range fake.bodies("Decrypt") {
		if _, named := body["KeyId"]; named {
			t.Fatalf("Decrypt names a key: %v", body)
		}
	}
	// The alias is described once for the value it matched, and again
	// (fresh) before key C is refused.
	if n, st := fake.calls("DescribeKey"), e.Stats(); n != 2 || st.DescribeKeyCalls != 2 {
		t.Fatalf("%d DescribeKey calls, Stats says %d", n, st.DescribeKeyCalls)
	}
}

func TestRepointedAliasIsSeenAgain(t *testing.T) {
	ctx := context.Background()
	fake := newFakeKMS(t)
	e := enc.New(kmsx.NewFromConfig(fake.config()))
	fake.point("alias/app", arnA)
	spec := enc.Spec{KeyID: "alias/app", PreviousKeyIDs: []string{arnC}}
	a, _ := e.Encrypt(ctx, spec, []byte(plaintext))
	if _, err := e.Decrypt(ctx, spec, a); err != nil {
		t.Fatal(err)
	}
	fake.point("alias/app", arnB)
	b, _ := e.Encrypt(ctx, spec, []byte(plaintext))
	if _, err := e.Decrypt(ctx, spec, b); err != nil {
		t.Fatalf("value under the alias's new key: %v", err)
	}
}

func TestRewrapByReEncryptNamesBothContexts(t *testing.T) {
	ctx := context.Background()
	fake := newFakeKMS(t)
	e := enc.New(kmsx.NewFromConfig(fake.config()))
	specCtx := map[string]string{"tenant": "acme"}
	old, _ := e.Encrypt(ctx, enc.Spec{KeyID: arnA, Context: specCtx}, []byte(plaintext))
	cur, _ := e.Encrypt(ctx, enc.Spec{KeyID: arnB, Context: specCtx}, []byte(plaintext))
	spec := enc.Spec{KeyID: arnB, PreviousKeyIDs: []string{arnA}, Context: specCtx}
	out, errs := e.Rewrap(ctx, []enc.RewrapRequest{{Spec: spec, Stored: old}, {Spec: spec, Stored: cur}})
	if errs[0] != nil || errs[1] != nil || out[0] == "" || out[1] != "" {
		t.Fatalf("out %q errs %v", out, errs)
	}
	if st := e.Stats(); st.ReEncryptCalls != 2 || st.DecryptCalls != 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, body := range fake.bodies("ReEncrypt") {
		src, _ := body["SourceEncryptionContext"].(map[string]any)
		dst, _ := body["DestinationEncryptionContext"].(map[string]any)
		if body["DestinationKeyId"] != arnB || src["tenant"] != "acme" || dst["tenant"] != "acme" || body["SourceKeyId"] != nil {
			t.Fatalf("ReEncrypt request %v", body)
		}
	}
	if got, err := e.Decrypt(ctx, enc.Spec{KeyID: arnB, Context: specCtx}, out[0]); err != nil || string(got) != plaintext {
		t.Fatalf("rewrapped value: %q %v", got, err)
	}
}

// decryptOnly is an API without ReEncrypt or DescribeKey.
type decryptOnly struct{ c *kms.Client }

func (d decryptOnly) GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, o ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	return d.c.GenerateDataKey(ctx, in, o...)
}

func (d decryptOnly) Decrypt(ctx context.Context, in *kms.DecryptInput, o ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	return d.c.Decrypt(ctx, in, o...)
}

func TestClientWithoutReEncryptFallsBackAndWithoutDescribeKeyFails(t *testing.T) {
	ctx := context.Background()
	fake := newFakeKMS(t)
	e := enc.New(kmsx.New(kmsx.WithClient("", decryptOnly{kms.NewFromConfig(fake.config())})))
	old, _ := e.Encrypt(ctx, enc.Spec{KeyID: arnA}, []byte(plaintext))
	spec := enc.Spec{KeyID: arnB, PreviousKeyIDs: []string{arnA}}
	out, errs := e.Rewrap(ctx, []enc.RewrapRequest{{Spec: spec, Stored: old}})
	if errs[0] != nil || out[0] == "" {
		t.Fatalf("fallback: %q %v", out, errs)
	}
	if st := e.Stats(); st.ReEncryptCalls != 0 || st.DecryptCalls != 1 || st.GenerateDataKeyCalls != 2 {
		t.Fatalf("stats %+v", st)
	}
	_, err := e.Decrypt(ctx, enc.Spec{KeyID: "alias/app", PreviousKeyIDs: []string{"alias/old"}}, old)
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "DescribeKey") {
		t.Fatalf("alias without DescribeKey: %v", err)
	}
}
