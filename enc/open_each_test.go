package enc_test

import (
	"context"
	"errors"
	"testing"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
)

// OpenEach fails a malformed value alone, fails the values of a data key
// KMS refuses together, and opens the rest; Open fails the whole call, and
// without a KMS call when a value is malformed.
func TestOpenEachFailsValuesOnTheirOwn(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	e := enc.New(keys)
	good, bad := enc.Spec{KeyID: "good"}, enc.Spec{KeyID: "bad"}
	a, _ := e.Seal(ctx, []enc.SealRequest{{Spec: good, Plaintext: []byte("a")}, {Spec: good, Plaintext: []byte("b")}})
	b, _ := e.Seal(ctx, []enc.SealRequest{{Spec: bad, Plaintext: []byte("c")}, {Spec: bad, Plaintext: []byte("d")}})
	keys.Fail = func(op string, k enc.KeyRef) error {
		if k.KeyID == "bad" {
			return enc.ErrAccessDenied
		}
		return nil
	}
	reqs := []enc.OpenRequest{
		{Spec: good, Attribute: "a", Stored: a[0]},
		{Spec: bad, Attribute: "c", Stored: b[0]},
		{Spec: good, Attribute: "broken", Stored: "ENC:!!"},
		{Spec: bad, Attribute: "d", Stored: b[1]},
		{Spec: good, Attribute: "b", Stored: a[1]},
	}
	before := e.Stats().DecryptCalls
	plain, errs := e.OpenEach(ctx, reqs)
	if string(plain[0]) != "a" || string(plain[4]) != "b" || errs[0] != nil || errs[4] != nil {
		t.Fatalf("good values: %q %q, %v %v", plain[0], plain[4], errs[0], errs[4])
	}
	for _, i := range []int{1, 3} {
		if ee, ok := enc.AsError(errs[i]); !ok || !errors.Is(errs[i], enc.ErrAccessDenied) || ee.Attribute != reqs[i].Attribute || plain[i] != nil {
			t.Errorf("value %d: %v", i, errs[i])
		}
	}
	if ee, ok := enc.AsError(errs[2]); !ok || !errors.Is(errs[2], enc.ErrMalformed) || ee.Attribute != "broken" {
		t.Errorf("malformed value: %v", errs[2])
	}
	if n := e.Stats().DecryptCalls - before; n != 2 {
		t.Errorf("%d Decrypt calls, want one per data key", n)
	}

	before = e.Stats().DecryptCalls
	if _, err := e.Open(ctx, reqs); !errors.Is(err, enc.ErrMalformed) {
		t.Fatalf("Open = %v, want the malformed value's error", err)
	}
	if n := e.Stats().DecryptCalls - before; n != 0 {
		t.Errorf("Open of a call with a malformed value made %d Decrypt calls", n)
	}
}

// BoundTo ties a version-1 value without context to nothing, and otherwise
// to exactly what it opens under.
func TestBoundTo(t *testing.T) {
	ctx := context.Background()
	e := enc.New(enctest.New())
	key := []enc.KeyAttribute{enc.StringKey("pk", "A")}
	b := enc.Binding{Attribute: "ssn", Key: key}
	v1, _ := e.SealOne(ctx, enc.SealRequest{Spec: enc.Spec{KeyID: "k"}, Plaintext: []byte("x")})
	v2, _ := e.SealOne(ctx, enc.SealRequest{Spec: enc.Spec{KeyID: "k", Version: enc.Version2}, Plaintext: []byte("x"), Binding: b})
	if got := enc.BoundTo(v1, b, nil); got != "" {
		t.Errorf("v1 without context is tied to %q", got)
	}
	tenant := map[string]string{"tenant": "acme"}
	if enc.BoundTo(v1, b, tenant) == "" || enc.BoundTo(v1, b, tenant) == enc.BoundTo(v1, b, map[string]string{"tenant": "globex"}) {
		t.Error("v1 with context is not tied to it")
	}
	other := enc.Binding{Attribute: "ssn", Key: []enc.KeyAttribute{enc.StringKey("pk", "B")}}
	if enc.BoundTo(v2, b, nil) == "" || enc.BoundTo(v2, b, nil) == enc.BoundTo(v2, other, nil) {
		t.Error("v2 is not tied to its item")
	}
	if enc.BoundTo(v2, b, nil) != enc.BoundTo(v2, enc.Binding{Attribute: "ssn", Key: key}, nil) {
		t.Error("equal places differ")
	}
}

// A context that has ended fails every value not opened yet; none comes
// back as an empty plaintext without an error.
func TestOpenEachAfterTheContextEnded(t *testing.T) {
	ctx := context.Background()
	e := enc.New(enctest.New())
	a, _ := e.SealOne(ctx, enc.SealRequest{Spec: enc.Spec{KeyID: "a"}, Plaintext: []byte("x")})
	b, _ := e.SealOne(ctx, enc.SealRequest{Spec: enc.Spec{KeyID: "b"}, Plaintext: []byte("y")})
	done, cancel := context.WithCancel(ctx)
	cancel()
	reqs := []enc.OpenRequest{{Spec: enc.Spec{KeyID: "a"}, Stored: a}, {Spec: enc.Spec{KeyID: "b"}, Stored: b}}
	plain, errs := e.OpenEach(done, reqs)
	for i := range reqs {
		if plain[i] != nil || !errors.Is(errs[i], context.Canceled) {
			t.Errorf("value %d: %q, %v", i, plain[i], errs[i])
		}
	}
	if _, err := e.Open(done, reqs); !errors.Is(err, context.Canceled) {
		t.Errorf("Open = %v", err)
	}
}

func TestBoundToKeepsContextsApart(t *testing.T) {
	e := enc.New(enctest.New())
	v1, _ := e.SealOne(context.Background(), enc.SealRequest{Spec: enc.Spec{KeyID: "k"}, Plaintext: []byte("x")})
	a := enc.BoundTo(v1, enc.Binding{}, map[string]string{"a": "1\x00b=2"})
	b := enc.BoundTo(v1, enc.Binding{}, map[string]string{"a": "1", "b": "2"})
	if a == b {
		t.Fatalf("two contexts give %q", a)
	}
}
