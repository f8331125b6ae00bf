package enc_test

import (
	"context"
	"errors"
	"testing"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
)

// A Rewrapper asks KMS about each data key once over all its calls, by
// Decrypt and by ReEncrypt alike; Close forgets.
func TestRewrapperAsksOncePerDataKey(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	e := enc.New(keys)
	v1 := sealMany(t, e, specA, "1", "2", "3", "4")
	v1more := sealMany(t, e, specA, "5")
	rw := e.Rewrapper()
	toV2 := func(stored string) enc.RewrapRequest {
		return enc.RewrapRequest{Spec: specBFromAv, Attribute: "ssn", Stored: stored, Binding: ssnOfUser}
	}
	byReEncrypt := func(stored string) enc.RewrapRequest {
		return enc.RewrapRequest{Spec: specBFromA, Attribute: "ssn", Stored: stored}
	}
	decrypts, reencrypts := keys.Decrypts.Load(), keys.ReEncrypts.Load()
	for page := range 3 {
		for _, reqs := range [][]enc.RewrapRequest{{toV2(v1[0]), toV2(v1[1])}, {byReEncrypt(v1[2]), byReEncrypt(v1[3])}} {
			out, errs := rw.Rewrap(ctx, reqs)
			for i := range out {
				if errs[i] != nil || out[i] == "" {
					t.Fatalf("page %d: %q, %v", page, out[i], errs[i])
				}
			}
		}
	}
	if d, r := keys.Decrypts.Load()-decrypts, keys.ReEncrypts.Load()-reencrypts; d != 1 || r != 1 {
		t.Fatalf("%d Decrypt and %d ReEncrypt calls over three pages of one data key, want 1 and 1", d, r)
	}
	// Another data key is another call; after Close, the first is asked again.
	if _, errs := rw.Rewrap(ctx, []enc.RewrapRequest{toV2(v1more[0])}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	rw.Close()
	if _, errs := rw.Rewrap(ctx, []enc.RewrapRequest{toV2(v1[0])}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if d := keys.Decrypts.Load() - decrypts; d != 3 {
		t.Fatalf("%d Decrypt calls, want 3 (one data key, another, the first after Close)", d)
	}
}

// Plaintext requests are sealed in the same call as the values rewrapped:
// one data key for all of them.
func TestRewrapSealsPlaintextWithTheRest(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	e := enc.New(keys)
	v1 := sealMany(t, e, specA, "1")
	generates := keys.Generates.Load()
	out, errs := e.Rewrap(ctx, []enc.RewrapRequest{
		{Spec: specBFromAv, Attribute: "ssn", Stored: v1[0], Binding: ssnOfUser},
		{Spec: specBFromAv, Attribute: "ssn", Plaintext: []byte("078-05-1120"), Binding: ssnOfUser},
		{Spec: specBFromAv, Attribute: "ssn"},
		{Spec: enc.Spec{KeyID: "key-b", Mode: enc.WriteOnly}, Attribute: "ssn", Plaintext: []byte("x")},
	})
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], enc.ErrMalformed) || !errors.Is(errs[3], enc.ErrWriteOnly) {
		t.Fatalf("errors %v", errs)
	}
	if n := keys.Generates.Load() - generates; n != 1 {
		t.Fatalf("%d GenerateDataKey calls for a rewrapped and a plaintext value of one spec, want 1", n)
	}
	plain, err := e.OpenOne(ctx, enc.OpenRequest{Spec: specB, Attribute: "ssn", Stored: out[1], Binding: ssnOfUser})
	if err != nil || string(plain) != "078-05-1120" {
		t.Fatalf("sealed plaintext opens to %q, %v", plain, err)
	}
}
