package enc_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
)

// Many goroutines share one Encryptor and its caches, with limits small
// enough that entries are used up, evicted and expire while others read
// them. Every value must open to what was sealed, under its own tenant and
// binding. Run with -race.
func TestConcurrentUseOfSharedCaches(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	e := enc.New(keys,
		enc.WithCache(enc.CacheLimits{MaxAge: 2 * time.Millisecond, MaxUses: 7, MaxEntries: 3}),
		enc.WithConcurrency(3))
	v2 := enc.Spec{KeyID: "alias/test", Version: enc.Version2, ContextFrom: map[string]string{"tenant": "tenant_id"}}
	v1 := enc.Spec{KeyID: "alias/test", ContextFrom: map[string]string{"tenant": "tenant_id"}}

	type sealed struct {
		stored, want, tenant string
		binding              enc.Binding
	}
	var (
		mu  sync.Mutex
		all []sealed
	)
	const workers, rounds = 24, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				// Each round seals values for several tenants in one call.
				var reqs []enc.SealRequest
				var meta []sealed
				for i := range 4 {
					tid := fmt.Sprintf("t%d", (w+r+i)%5)
					b := enc.Binding{Attribute: "ssn", Key: []enc.KeyAttribute{enc.StringKey("pk", fmt.Sprintf("%d/%d/%d", w, r, i))}}
					want := fmt.Sprintf("value %d/%d/%d", w, r, i)
					s := v1
					if i%2 == 0 {
						s = v2
					}
					reqs = append(reqs, enc.SealRequest{Spec: s, Plaintext: []byte(want), Binding: b, ItemContext: tenant(tid)})
					meta = append(meta, sealed{want: want, tenant: tid, binding: b})
				}
				out, err := e.Seal(ctx, reqs)
				if err != nil {
					errs <- err
					return
				}
				for i := range meta {
					meta[i].stored = out[i]
				}
				mu.Lock()
				all = append(all, meta...)
				// Open a mix of our own values and others'.
				var check []sealed
				for i := len(all) - 1; i >= 0 && len(check) < 6; i -= 1 + (w % 3) {
					check = append(check, all[i])
				}
				mu.Unlock()
				opens := make([]enc.OpenRequest, len(check))
				for i, c := range check {
					opens[i] = enc.OpenRequest{Spec: v2, Stored: c.stored, Binding: c.binding, ItemContext: tenant(c.tenant)}
				}
				plain, err := e.Open(ctx, opens)
				if err != nil {
					errs <- err
					return
				}
				for i, p := range plain {
					if string(p) != check[i].want {
						errs <- fmt.Errorf("opened %q, want %q", p, check[i].want)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := e.Stats()
	if st.CacheHits == 0 || st.CacheMisses == 0 {
		t.Fatalf("stats %+v: the caches were not exercised both ways", st)
	}
	if got := keys.Generates.Load() + keys.Decrypts.Load(); got != st.GenerateDataKeyCalls+st.DecryptCalls {
		t.Fatalf("provider saw %d calls, Stats counts %d", got, st.GenerateDataKeyCalls+st.DecryptCalls)
	}
	t.Logf("%d values; %+v", len(all), st)
}
