//go:build go1.25

// testing/synctest needs Go 1.25; the module still builds with Go 1.24.

package repo_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/dynoseal/dynoseal/repo"
)

func TestBatchConcurrencyIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newFakeBatchDB(t)
		db.held = make(chan struct{})
		r, _ := batchRepo(t, db, repo.WithBatchConcurrency(3))
		done := make(chan error, 1)
		go func() { done <- r.BatchPut(context.Background(), batchAccounts(200)) }()
		// synctest.Wait returns once every goroutine of the bubble is
		// blocked: the requests the call has started are held in the fake,
		// and the call waits for one of them to end before it starts
		// another. So the fake's in-flight count is then exactly as many
		// requests as the call lets run at once. The requests are let go
		// one at a time, and the count is checked before each.
		for step := 0; ; step++ {
			synctest.Wait()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				if n := db.maxInFlight.Load(); n != 3 {
					t.Fatalf("%d requests in flight at most, want 3", n)
				}
				return
			default:
			}
			n := db.inFlight.Load()
			if n > 3 || (step == 0 && n != 3) {
				t.Fatalf("%d requests in flight after %d ended, want 3 (fewer only once fewer are left)", n, step)
			}
			db.held <- struct{}{}
		}
	})
}
