//go:build go1.25

// testing/synctest needs Go 1.25; the module still builds with Go 1.24.

package repo_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/repo"
)

// heldDecrypts holds every Decrypt until release is closed or the call's
// context ends; GenerateDataKey goes straight through.
type heldDecrypts struct {
	*enctest.Provider
	release chan struct{}
}

func (h heldDecrypts) DecryptDataKey(ctx context.Context, k enc.KeyRef, blob []byte) ([]byte, error) {
	select {
	case <-h.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return h.Provider.DecryptDataKey(ctx, k, blob)
}

// A parallel scan with a limit opens only the items it returns. Every item
// is sealed under a data key of its own, so the Decrypt count is the number
// of items opened, and it must be exactly the limit.
//
// The order of events is fixed so that the budget is what keeps the count
// down, not the timing. synctest.Wait returns once every goroutine of the
// bubble is blocked. First the segments' requests are held until then: each
// worker has asked for a page before any page came back, so four pages of up
// to n items arrive for n wanted. Then the Decrypts are held until then:
// every worker that opens anything is inside KMS before any page reaches the
// loop, so none is stopped early by the loop ending. A scan that opened its
// pages without taking from the budget would make 4n Decrypts (200 for
// n = 60); one that ignored the budget altogether would also ask for whole
// segments, 50 items a page.
func TestParallelScanOpensOnlyTheItemsItReturns(t *testing.T) {
	for _, n := range []int{1, 7, 60} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				requests := make(chan struct{})
				keys := heldDecrypts{Provider: enctest.New(), release: make(chan struct{})}
				f := &fakeDB{fail: func(ctx context.Context, _ int) error {
					select {
					case <-requests:
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				}}
				r, _ := newRepo(t, repo.WithEncryptor(enc.New(keys)), repo.WithClient(f))
				// One Seal call per item, as one Put per item would make:
				// 200 items, 200 data keys, 50 in each of four segments.
				f.items = accountItems(t, r, 200, 1)
				if g := r.Encryptor().Stats().GenerateDataKeyCalls; g != 200 {
					t.Fatalf("%d GenerateDataKey calls for 200 items, want one data key per item", g)
				}

				type result struct {
					items []Account
					err   error
				}
				done := make(chan result, 1)
				go func() {
					var res result
					for a, err := range r.Scan(context.Background(), repo.Segments(4), repo.Limit(n)) {
						if err != nil {
							res.err = err
							break
						}
						res.items = append(res.items, a)
					}
					done <- res
				}()
				synctest.Wait()
				if sent := f.calls(); sent != 4 {
					t.Errorf("%d requests before any answer, want one per segment (4)", sent)
				}
				close(requests)
				synctest.Wait()
				close(keys.release)
				res := <-done

				if res.err != nil {
					t.Fatal(res.err)
				}
				if len(res.items) != n {
					t.Fatalf("%d items, want %d", len(res.items), n)
				}
				seen := map[int]bool{}
				for _, a := range res.items {
					checkAccount(t, a, a.SK)
					if seen[a.SK] {
						t.Fatalf("item %d returned twice", a.SK)
					}
					seen[a.SK] = true
				}
				if d := r.Encryptor().Stats().DecryptCalls; d != int64(n) {
					t.Fatalf("%d Decrypt calls for %d items returned, each under its own data key: want %d", d, n, n)
				}
			})
		})
	}
}
