package enc_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
)

// clock is a manual clock for cache ages.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func encryptN(t *testing.T, e *enc.Encryptor, s enc.Spec, n int) []string {
	t.Helper()
	reqs := make([]enc.SealRequest, n)
	for i := range reqs {
		reqs[i] = enc.SealRequest{Spec: s, Plaintext: []byte{byte(i)}}
	}
	out, err := e.Seal(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEncryptCacheIsOffByDefault(t *testing.T) {
	keys := enctest.New()
	e := enc.New(keys)
	encryptN(t, e, spec, 1)
	encryptN(t, e, spec, 1)
	if st := e.Stats(); st.GenerateDataKeyCalls != 2 || st.CacheHits != 0 || st.CacheMisses != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestEncryptCacheHonoursMaxUses(t *testing.T) {
	keys := enctest.New()
	e := enc.New(keys, enc.WithEncryptCache(enc.CacheLimits{MaxUses: 5}))
	encryptN(t, e, spec, 2) // miss: new key, 2 uses
	encryptN(t, e, spec, 3) // hit: 5 uses, key used up
	encryptN(t, e, spec, 1) // miss: new key, 1 use
	encryptN(t, e, spec, 5) // does not fit (6 > 5): miss, new key used up at once, not cached
	encryptN(t, e, spec, 4) // the 1-use key was replaced; miss
	encryptN(t, e, spec, 1) // hit: 5 uses
	st := e.Stats()
	if st.GenerateDataKeyCalls != 4 || st.CacheHits != 2 || st.CacheMisses != 4 {
		t.Fatalf("stats %+v, want 4 GenerateDataKey, 2 hits, 4 misses", st)
	}
	// A call with more values than MaxUses still makes one key for them all.
	before := keys.Generates.Load()
	encryptN(t, e, spec, 12)
	if n := keys.Generates.Load() - before; n != 1 {
		t.Fatalf("%d GenerateDataKey calls for one oversized group", n)
	}
}

func TestEncryptCacheHonoursMaxAge(t *testing.T) {
	clk := newClock()
	keys := enctest.New()
	e := enc.New(keys, enc.WithEncryptCache(enc.CacheLimits{MaxAge: time.Minute}), enc.WithClock(clk.Now))
	a := encryptN(t, e, spec, 1)[0]
	clk.Advance(59 * time.Second)
	b := encryptN(t, e, spec, 1)[0]
	clk.Advance(time.Second)
	c := encryptN(t, e, spec, 1)[0]
	if n := keys.Generates.Load(); n != 2 {
		t.Fatalf("%d GenerateDataKey calls, want 2 (reuse within a minute, new key at a minute)", n)
	}
	if encryptedKey(t, a) != encryptedKey(t, b) || encryptedKey(t, b) == encryptedKey(t, c) {
		t.Fatal("values do not carry the data keys the cache should have given them")
	}
}

func TestCachesAreKeyedByContextAndKey(t *testing.T) {
	keys := enctest.New()
	e := enc.New(keys, enc.WithCache(enc.CacheLimits{}))
	ctx := context.Background()
	for range 3 {
		for _, id := range []string{"acme", "globex"} {
			if _, err := e.SealOne(ctx, enc.SealRequest{Spec: tenantSpec, Plaintext: []byte("x"), ItemContext: tenant(id)}); err != nil {
				t.Fatal(err)
			}
		}
		encryptN(t, e, enc.Spec{KeyID: "alias/other"}, 1)
		encryptN(t, e, enc.Spec{KeyID: "alias/test", Region: "eu-west-1"}, 1)
	}
	if n := keys.Generates.Load(); n != 4 {
		t.Fatalf("%d GenerateDataKey calls, want one per (key, region, context): 4", n)
	}
}

func TestDecryptCacheReusesKeysAcrossCalls(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	e := enc.New(keys, enc.WithDecryptCache(enc.CacheLimits{}))
	stored := encryptN(t, e, spec, 3)
	for range 4 {
		for _, s := range stored {
			got, err := e.Decrypt(ctx, spec, s)
			if err != nil || len(got) != 1 {
				t.Fatalf("%v, %v", got, err)
			}
		}
	}
	st := e.Stats()
	if st.DecryptCalls != 1 || st.CacheHits != 11 || st.CacheMisses != 1 || st.GenerateDataKeyCalls != 1 {
		t.Fatalf("stats %+v, want 1 Decrypt, 11 hits, 1 miss", st)
	}
}

// The decrypt cache never opens a value under a context KMS would refuse.
func TestDecryptCacheStillChecksContext(t *testing.T) {
	ctx := context.Background()
	e := enc.New(enctest.New(), enc.WithCache(enc.CacheLimits{}))
	stored, err := e.SealOne(ctx, enc.SealRequest{Spec: tenantSpec, Plaintext: []byte("x"), ItemContext: tenant("acme")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.OpenOne(ctx, enc.OpenRequest{Spec: tenantSpec, Stored: stored, ItemContext: tenant("acme")}); err != nil {
		t.Fatal(err)
	}
	_, err = e.OpenOne(ctx, enc.OpenRequest{Spec: tenantSpec, Stored: stored, ItemContext: tenant("globex")})
	if !errors.Is(err, enc.ErrInvalidCiphertext) {
		t.Fatalf("warm cache, other tenant: %v, want ErrInvalidCiphertext", err)
	}
	other := enc.Spec{KeyID: "alias/other", Context: tenantSpec.Context, ContextFrom: tenantSpec.ContextFrom}
	_, err = e.OpenOne(ctx, enc.OpenRequest{Spec: other, Stored: stored, ItemContext: tenant("acme")})
	if !errors.Is(err, enc.ErrInvalidCiphertext) {
		t.Fatalf("warm cache, other key: %v, want ErrInvalidCiphertext", err)
	}
}

func TestDecryptCacheEvictsLeastRecentlyUsed(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	e := enc.New(keys, enc.WithDecryptCache(enc.CacheLimits{MaxEntries: 2}))
	var stored []string
	for range 3 {
		stored = append(stored, encryptN(t, e, spec, 1)[0]) // three data keys
	}
	open := func(i int) {
		t.Helper()
		if _, err := e.Decrypt(ctx, spec, stored[i]); err != nil {
			t.Fatal(err)
		}
	}
	open(0)
	open(1)
	open(0) // hit; 1 is now least recently used
	open(2) // evicts 1
	open(0) // hit
	if n := keys.Decrypts.Load(); n != 3 {
		t.Fatalf("%d Decrypt calls, want 3", n)
	}
	open(1) // miss
	if n := keys.Decrypts.Load(); n != 4 {
		t.Fatalf("%d Decrypt calls after reopening an evicted key, want 4", n)
	}
	if _, opening := enc.CacheLens(e); opening != 2 {
		t.Fatalf("%d decrypt cache entries, want 2", opening)
	}
}

func TestDecryptCacheHonoursMaxAge(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	keys := enctest.New()
	e := enc.New(keys, enc.WithDecryptCache(enc.CacheLimits{MaxAge: time.Minute}), enc.WithClock(clk.Now))
	stored := encryptN(t, e, spec, 1)[0]
	for range 2 {
		if _, err := e.Decrypt(ctx, spec, stored); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)
	}
	if n := keys.Decrypts.Load(); n != 2 {
		t.Fatalf("%d Decrypt calls, want 2 (entry expired after a minute)", n)
	}
}

// Evicted, expired and cleared keys are wiped in the cache's own memory.
func TestCachedKeysAreWiped(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	e := enc.New(enctest.New(), enc.WithCache(enc.CacheLimits{MaxAge: time.Minute, MaxEntries: 1, MaxUses: 2}), enc.WithClock(clk.Now))
	zero := make([]byte, 32)
	wiped := func(bufs [][]byte) bool {
		for _, b := range bufs {
			if !bytes.Equal(b, zero) {
				return false
			}
		}
		return true
	}

	// Used up.
	encryptN(t, e, spec, 1)
	bufs := enc.CachedKeyBuffers(e)
	if len(bufs) != 1 || wiped(bufs) {
		t.Fatal("no live cached key")
	}
	encryptN(t, e, spec, 1)
	if !wiped(bufs) {
		t.Fatal("used-up key not wiped")
	}

	// Evicted by a newer entry.
	encryptN(t, e, spec, 1)
	bufs = enc.CachedKeyBuffers(e)
	encryptN(t, e, enc.Spec{KeyID: "alias/other"}, 1)
	if !wiped(bufs) {
		t.Fatal("evicted key not wiped")
	}

	// Expired.
	stored := encryptN(t, e, spec, 1)[0]
	if _, err := e.Decrypt(ctx, spec, stored); err != nil {
		t.Fatal(err)
	}
	bufs = enc.CachedKeyBuffers(e)
	if len(bufs) != 2 {
		t.Fatalf("%d cached keys, want one per cache", len(bufs))
	}
	clk.Advance(time.Minute)
	if s, o := enc.CacheLens(e); s != 0 || o != 0 || !wiped(bufs) {
		t.Fatal("expired keys not wiped")
	}

	// Cleared.
	encryptN(t, e, spec, 1)
	bufs = enc.CachedKeyBuffers(e)
	e.ClearCaches()
	if s, o := enc.CacheLens(e); s != 0 || o != 0 || !wiped(bufs) {
		t.Fatal("ClearCaches left keys")
	}
}

// Caches never let a spec do what its mode forbids.
func TestCachesKeepModeRules(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	e := enc.New(keys, enc.WithCache(enc.CacheLimits{}))
	stored := encryptN(t, e, spec, 1)[0]
	if _, err := e.Decrypt(ctx, spec, stored); err != nil { // decrypt cache now warm
		t.Fatal(err)
	}
	before := e.Stats()

	writeOnly := spec
	writeOnly.Mode = enc.WriteOnly
	if _, err := e.Decrypt(ctx, writeOnly, stored); !errors.Is(err, enc.ErrWriteOnly) {
		t.Fatalf("WriteOnly open with a warm cache: %v", err)
	}
	readOnly := spec
	readOnly.Mode = enc.ReadOnly
	if _, err := e.Encrypt(ctx, readOnly, []byte("x")); !errors.Is(err, enc.ErrReadOnly) {
		t.Fatalf("ReadOnly seal with a warm cache: %v", err)
	}
	if after := e.Stats(); after != before {
		t.Fatalf("refused calls touched KMS or the caches: %+v -> %+v", before, after)
	}
	// ReadOnly opens from the cache; WriteOnly seals from it.
	if _, err := e.Decrypt(ctx, readOnly, stored); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Encrypt(ctx, writeOnly, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.CacheHits != before.CacheHits+2 || st.GenerateDataKeyCalls != before.GenerateDataKeyCalls || st.DecryptCalls != before.DecryptCalls {
		t.Fatalf("stats %+v after %+v, want two more hits and no KMS call", st, before)
	}
}

func encryptedKey(t *testing.T, stored string) string {
	t.Helper()
	raw := decodeStored(t, stored)
	n := int(raw[1])<<8 | int(raw[2])
	return string(raw[3 : 3+n])
}

func decodeStored(t *testing.T, stored string) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(stored, enc.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// gatedKeys holds every Decrypt until the test lets it go.
type gatedKeys struct {
	*enctest.Provider
	entered chan struct{}
	release chan struct{}
}

func (g gatedKeys) DecryptDataKey(ctx context.Context, k enc.KeyRef, blob []byte) ([]byte, error) {
	g.entered <- struct{}{}
	<-g.release
	return g.Provider.DecryptDataKey(ctx, k, blob)
}

// A key still on its way from KMS when ClearCaches runs is not cached when it
// arrives: after ClearCaches, the next read asks KMS again.
func TestClearCachesWinsOverAFetchUnderWay(t *testing.T) {
	ctx := context.Background()
	keys := gatedKeys{Provider: enctest.New(), entered: make(chan struct{}, 4), release: make(chan struct{})}
	s := enc.Spec{KeyID: "alias/k"}
	stored, err := enc.New(keys.Provider).Encrypt(ctx, s, []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	e := enc.New(keys, enc.WithDecryptCache(enc.CacheLimits{}))
	done := make(chan error, 1)
	go func() {
		_, err := e.Decrypt(ctx, s, stored)
		done <- err
	}()
	<-keys.entered
	e.ClearCaches()
	close(keys.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	before := keys.Decrypts.Load()
	if _, err := e.Decrypt(ctx, s, stored); err != nil {
		t.Fatal(err)
	}
	if keys.Decrypts.Load() != before+1 {
		t.Fatal("a key fetched before ClearCaches was served from the cache after it")
	}
}
