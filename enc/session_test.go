package enc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
)

// sealGroup seals n values under one data key, as one write call would.
func sealGroup(t *testing.T, e *enc.Encryptor, s enc.Spec, n int) []enc.OpenRequest {
	t.Helper()
	var reqs []enc.SealRequest
	for i := range n {
		reqs = append(reqs, enc.SealRequest{Spec: s, Attribute: "ssn", Plaintext: []byte(fmt.Sprintf("value %d", i))})
	}
	stored, err := e.Seal(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]enc.OpenRequest, n)
	for i, st := range stored {
		out[i] = enc.OpenRequest{Spec: s, Attribute: "ssn", Stored: st}
	}
	return out
}

func checkOpened(t *testing.T, plain [][]byte, from int) {
	t.Helper()
	for i, p := range plain {
		if want := fmt.Sprintf("value %d", from+i); string(p) != want {
			t.Fatalf("value %d opened to %q, want %q", from+i, p, want)
		}
	}
}

func TestSessionDecryptsADataKeyOncePerRun(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	e := enc.New(keys)
	spec := enc.Spec{KeyID: "alias/test"}
	reqs := sealGroup(t, e, spec, 30)

	s := e.Session()
	defer s.Close()
	for page := 0; page < 30; page += 10 {
		plain, err := s.Open(ctx, reqs[page:page+10])
		if err != nil {
			t.Fatal(err)
		}
		checkOpened(t, plain, page)
	}
	if st := e.Stats(); st.DecryptCalls != 1 || st.CacheHits != 2 || st.CacheMisses != 0 {
		t.Fatalf("stats %+v, want 1 Decrypt and 2 hits for three pages under one data key", st)
	}

	// Outside a session every call decrypts again, as before.
	for page := 0; page < 30; page += 10 {
		if _, err := e.Open(ctx, reqs[page:page+10]); err != nil {
			t.Fatal(err)
		}
	}
	if st := e.Stats(); st.DecryptCalls != 4 {
		t.Fatalf("%d Decrypt calls, want 4", st.DecryptCalls)
	}
}

func TestSessionCloseWipesTheKeysAndEndsTheSession(t *testing.T) {
	ctx := context.Background()
	e := enc.New(enctest.New())
	reqs := sealGroup(t, e, enc.Spec{KeyID: "alias/test"}, 2)
	s := e.Session()
	if _, err := s.Open(ctx, reqs[:1]); err != nil {
		t.Fatal(err)
	}
	buffers := enc.SessionKeyBuffers(s)
	if len(buffers) != 1 || bytes.Equal(buffers[0], make([]byte, 32)) {
		t.Fatalf("memo holds %d keys", len(buffers))
	}
	s.Close()
	if !bytes.Equal(buffers[0], make([]byte, 32)) {
		t.Fatal("Close left a plaintext data key in memory")
	}
	if n := len(enc.SessionKeyBuffers(s)); n != 0 {
		t.Fatalf("memo holds %d keys after Close", n)
	}
	before := e.Stats().DecryptCalls
	if _, err := s.Open(ctx, reqs[1:]); err == nil {
		t.Fatal("a closed session opened a value")
	}
	if e.Stats().DecryptCalls != before {
		t.Fatal("a closed session called KMS")
	}
	s.Close() // twice is fine

	var zero enc.Session
	if _, err := zero.Open(ctx, reqs); err == nil {
		t.Fatal("a zero Session opened a value")
	}
	zero.Close()
	var none *enc.Session
	if _, err := none.Open(ctx, reqs); err == nil {
		t.Fatal("a nil Session opened a value")
	}
	none.Close()
}

// The memo never lets a request skip a check KMS or the mode would make.
func TestSessionKeepsModeAndContextRules(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	e := enc.New(keys)
	tenantA := enc.Spec{KeyID: "alias/test", Context: map[string]string{"tenant": "a"}}
	reqs := sealGroup(t, e, tenantA, 1)
	s := e.Session()
	defer s.Close()
	if _, err := s.Open(ctx, reqs); err != nil {
		t.Fatal(err)
	}

	writeOnly := tenantA
	writeOnly.Mode = enc.WriteOnly
	_, err := s.Open(ctx, []enc.OpenRequest{{Spec: writeOnly, Attribute: "ssn", Stored: reqs[0].Stored}})
	if !errors.Is(err, enc.ErrWriteOnly) {
		t.Fatalf("WriteOnly spec: err = %v, want ErrWriteOnly", err)
	}

	// Another context is another data key as far as the memo knows: KMS
	// is asked, and refuses.
	tenantB := enc.Spec{KeyID: "alias/test", Context: map[string]string{"tenant": "b"}}
	_, err = s.Open(ctx, []enc.OpenRequest{{Spec: tenantB, Attribute: "ssn", Stored: reqs[0].Stored}})
	if !errors.Is(err, enc.ErrInvalidCiphertext) {
		t.Fatalf("other context: err = %v, want ErrInvalidCiphertext", err)
	}
	if st := e.Stats(); st.DecryptCalls != 2 || st.CacheHits != 0 {
		t.Fatalf("stats %+v, want 2 Decrypt calls and no hits", st)
	}
}

func TestClearCachesReachesOpenSessions(t *testing.T) {
	ctx := context.Background()
	e := enc.New(enctest.New())
	reqs := sealGroup(t, e, enc.Spec{KeyID: "alias/test"}, 2)
	s := e.Session()
	defer s.Close()
	if _, err := s.Open(ctx, reqs[:1]); err != nil {
		t.Fatal(err)
	}
	buffers := enc.SessionKeyBuffers(s)
	e.ClearCaches()
	if len(buffers) != 1 || !bytes.Equal(buffers[0], make([]byte, 32)) {
		t.Fatal("ClearCaches left a session's data key in memory")
	}
	if _, err := s.Open(ctx, reqs[1:]); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.DecryptCalls != 2 {
		t.Fatalf("%d Decrypt calls, want 2: the key was cleared", st.DecryptCalls)
	}
}

func TestSessionMemoExpiresWithTheDecryptCacheAge(t *testing.T) {
	ctx := context.Background()
	clk := &clock{now: time.Unix(0, 0)} // locked: the caches' sweep timers read it too
	e := enc.New(enctest.New(), enc.WithDecryptCache(enc.CacheLimits{MaxAge: time.Second}), enc.WithClock(clk.Now))
	reqs := sealGroup(t, e, enc.Spec{KeyID: "alias/test"}, 2)
	s := e.Session()
	defer s.Close()
	if _, err := s.Open(ctx, reqs[:1]); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	if _, err := s.Open(ctx, reqs[1:]); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.DecryptCalls != 2 {
		t.Fatalf("%d Decrypt calls, want 2: the memo outlived the cache's MaxAge", st.DecryptCalls)
	}
}
