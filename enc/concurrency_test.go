//go:build go1.25

package enc_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
)

// The tests in this file need callers to overlap inside the library: one of
// them asking KMS for a data key while the others wait for its answer. A
// caller waiting inside enc cannot be seen from outside, but that it is
// blocked can: each test runs in a synctest bubble, and synctest.Wait returns
// only once every other goroutine of the bubble is durably blocked. With
// heldKeys holding KMS calls on a channel, that is when each caller is
// either held inside KMS or waiting for a call that is (or finished), so the
// order no longer depends on the scheduler or on how long anything takes.
// A caller stuck for good (say, a waiter that ignores its context) blocks
// the whole bubble, and synctest fails the test with a deadlock at once
// instead of letting it hang. (testing/synctest needs Go 1.25; the module
// still builds with Go 1.24, hence the build constraint.)

// heldKeys holds every KMS call until Release or the end of the call's
// context, and counts the calls that reach it.
type heldKeys struct {
	*enctest.Provider
	release chan struct{}
	once    sync.Once
	calls   atomic.Int64
}

func newHeldKeys(p *enctest.Provider) *heldKeys {
	return &heldKeys{Provider: p, release: make(chan struct{})}
}

// Release lets the held calls and every later one through.
func (h *heldKeys) Release() { h.once.Do(func() { close(h.release) }) }

func (h *heldKeys) hold(ctx context.Context) error {
	h.calls.Add(1)
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *heldKeys) GenerateDataKey(ctx context.Context, k enc.KeyRef) ([]byte, []byte, error) {
	if err := h.hold(ctx); err != nil {
		return nil, nil, err
	}
	return h.Provider.GenerateDataKey(ctx, k)
}

func (h *heldKeys) DecryptDataKey(ctx context.Context, k enc.KeyRef, blob []byte) ([]byte, error) {
	if err := h.hold(ctx); err != nil {
		return nil, err
	}
	return h.Provider.DecryptDataKey(ctx, k, blob)
}

// Callers that miss the cache at the same time share one KMS call instead of
// each making their own.
func TestConcurrentCacheMissesShareOneKMSCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		keys := enctest.New()
		s := enc.Spec{KeyID: "alias/k"}
		ctx := context.Background()
		const callers = 16

		sealing := newHeldKeys(keys)
		defer sealing.Release() // on failure too: a held goroutine left behind is a deadlock
		e := enc.New(sealing, enc.WithCache(enc.CacheLimits{}))
		stored := make([]string, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if stored[i], err = e.Encrypt(ctx, s, []byte("v")); err != nil {
					t.Error(err)
				}
			}()
		}
		// Every caller has missed the cache: one is held inside
		// GenerateDataKey and the others wait for it (or, if misses were
		// not shared, all sixteen are held inside KMS).
		synctest.Wait()
		sealing.Release()
		wg.Wait()
		if n := keys.Generates.Load(); n != 1 {
			t.Fatalf("%d concurrent sealers made %d GenerateDataKey calls, want 1", callers, n)
		}

		opening := newHeldKeys(keys)
		defer opening.Release()
		fresh := enc.New(opening, enc.WithDecryptCache(enc.CacheLimits{}))
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if got, err := fresh.Decrypt(ctx, s, stored[i]); err != nil || string(got) != "v" {
					t.Errorf("Decrypt = %q, %v", got, err)
				}
			}()
		}
		synctest.Wait() // as above, with Decrypt
		opening.Release()
		wg.Wait()
		if n := keys.Decrypts.Load(); n != 1 {
			t.Fatalf("%d concurrent openers of one data key made %d Decrypt calls, want 1", callers, n)
		}
		if st := fresh.Stats(); st.CacheMisses != 1 || st.CacheHits != callers-1 {
			t.Fatalf("stats %+v, want 1 miss and %d hits", st, callers-1)
		}
	})
}

// A caller waiting for another's KMS call gives up when its context ends.
func TestCacheWaitHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		keys := newHeldKeys(enctest.New())
		defer keys.Release()
		e := enc.New(keys, enc.WithEncryptCache(enc.CacheLimits{}))
		s := enc.Spec{KeyID: "alias/k"}
		leader := make(chan error, 1)
		go func() {
			_, err := e.Encrypt(context.Background(), s, []byte("v"))
			leader <- err
		}()
		// The leader is held inside GenerateDataKey: its fetch is under way.
		synctest.Wait()
		// The bubble's clock reaches the deadline only once every goroutine
		// is blocked, this caller included: it waits for the leader and has
		// to give up on its own context.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if _, err := e.Encrypt(ctx, s, []byte("w")); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("waiting caller: %v, want DeadlineExceeded", err)
		}
		if n := keys.calls.Load(); n != 1 {
			t.Fatalf("%d GenerateDataKey calls, want 1: the second caller waits for the first, it does not ask KMS", n)
		}
		keys.Release()
		if err := <-leader; err != nil {
			t.Fatal(err)
		}
	})
}

// When the one caller asking KMS fails, the callers waiting on it get its
// error instead of each asking KMS in turn.
func TestConcurrentCacheMissesShareAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		keys := newHeldKeys(enctest.New())
		defer keys.Release()
		keys.Fail = func(string, enc.KeyRef) error { return enc.ErrAccessDenied }
		e := enc.New(keys, enc.WithCache(enc.CacheLimits{}))
		s := enc.Spec{KeyID: "alias/k"}
		const callers = 16
		var wg sync.WaitGroup
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.Encrypt(context.Background(), s, []byte("v")); !errors.Is(err, enc.ErrAccessDenied) {
					t.Errorf("err = %v, want ErrAccessDenied", err)
				}
			}()
		}
		// One caller is held inside GenerateDataKey, the others wait for
		// its answer: all of them are there when KMS refuses.
		synctest.Wait()
		keys.Release()
		wg.Wait()
		if n := keys.Generates.Load(); n != 1 {
			t.Fatalf("%d callers made %d GenerateDataKey calls against a refusing KMS, want 1: waiters should share the failure", callers, n)
		}
	})
}

// Expired data keys are wiped when they expire, not when the cache is next used.
func TestExpiredKeysAreWipedWithoutFurtherUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxAge = 30 * time.Millisecond
		e := enc.New(enctest.New(), enc.WithEncryptCache(enc.CacheLimits{MaxAge: maxAge}))
		if _, err := e.Encrypt(context.Background(), enc.Spec{KeyID: "alias/k"}, []byte("v")); err != nil {
			t.Fatal(err)
		}
		if n := len(enc.CachedKeyBuffers(e)); n != 1 {
			t.Fatalf("%d keys cached after one seal, want 1", n)
		}
		// This moves the bubble's clock, not the wall clock's: 100 ms past
		// MaxAge with nothing using the cache. Any timer the cache set to
		// wipe the key has fired by then, and synctest.Wait returns once
		// what it started has finished.
		time.Sleep(maxAge + 100*time.Millisecond)
		synctest.Wait()
		if n := len(enc.CachedKeyBuffers(e)); n != 0 {
			t.Fatalf("%d expired keys still held 100ms after MaxAge", n)
		}
	})
}

// Closing a session while its opens wait on one Decrypt ends them; they do
// not each go on to ask KMS.
func TestSessionClosedMidFetchDoesNotMultiplyDecrypts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		keys := newHeldKeys(enctest.New())
		defer keys.Release()
		s := enc.Spec{KeyID: "alias/k"}
		stored, err := enc.New(keys.Provider).Encrypt(ctx, s, []byte("v"))
		if err != nil {
			t.Fatal(err)
		}
		e := enc.New(keys)
		session := e.Session()
		const openers = 4
		errs := make(chan error, openers)
		for range openers {
			go func() {
				_, err := session.Open(ctx, []enc.OpenRequest{{Spec: s, Stored: stored}})
				errs <- err
			}()
		}
		// One opener is held inside Decrypt, the other three wait for it:
		// the session closes under waiting openers, the case this test is
		// about, not before they came.
		synctest.Wait()
		session.Close()
		keys.Release()
		for range openers {
			<-errs
		}
		if n := keys.Decrypts.Load(); n != 1 {
			t.Fatalf("%d Decrypt calls after the session closed under %d openers, want 1", n, openers)
		}
	})
}

func TestSessionSharesOneDecryptAmongGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		keys := enctest.New()
		spec := enc.Spec{KeyID: "alias/test"}
		reqs := sealGroup(t, enc.New(keys), spec, 64)
		held := newHeldKeys(keys)
		defer held.Release()
		e := enc.New(held)
		s := e.Session()
		defer s.Close()
		var wg sync.WaitGroup
		errs := make(chan error, 64) // room for every value's error
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				plain, err := s.Open(ctx, reqs[w*4:w*4+4])
				if err != nil {
					errs <- err
					return
				}
				for i, p := range plain {
					if want := fmt.Sprintf("value %d", w*4+i); string(p) != want {
						errs <- fmt.Errorf("opened %q, want %q", p, want)
					}
				}
			}()
		}
		// Every goroutine asks for the key while it is being fetched: one
		// is held inside Decrypt, the others wait for it.
		synctest.Wait()
		held.Release()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if st := e.Stats(); st.DecryptCalls != 1 || st.CacheHits != 15 {
			t.Fatalf("stats %+v, want 1 Decrypt and 15 hits", st)
		}
	})
}
