// Package batchrun sends the requests of one batch call: chunks within a
// request's limits, a bounded number in flight, and what the service leaves
// unprocessed sent again with capped, jittered backoff.
package batchrun

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
)

// Limits bound one call: requests in flight, and the backoff before
// entries left unprocessed are sent again.
type Limits struct {
	Concurrency         int
	BaseDelay, MaxDelay time.Duration
}

// delay is the full-jitter wait before the retry after attempt (0-based).
func (o Limits) delay(attempt int) time.Duration {
	ceiling := o.MaxDelay
	if attempt < 62 {
		if d := o.BaseDelay << attempt; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	return rand.N(ceiling + 1)
}

// Chunk splits entries of the given sizes, in order, into runs of at most
// maxCount entries and maxBytes bytes.
func Chunk(sizes []int, maxCount, maxBytes int) [][]int {
	var out [][]int
	var cur []int
	bytes := 0
	for i, n := range sizes {
		if len(cur) > 0 && (len(cur) == maxCount || bytes+n > maxBytes) {
			out = append(out, cur)
			cur, bytes = nil, 0
		}
		cur = append(cur, i)
		bytes += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// Send sends one request for the entries idx and returns those DynamoDB
// left unprocessed.
type Send func(ctx context.Context, idx []int) (left []int, err error)

var throttles = retry.IsErrorThrottles(retry.DefaultThrottles)

// Run sends every chunk until it is processed, with at most o.Concurrency
// requests in flight, and returns the sorted entries that were not processed
// with the causes. A request that fails (other than by throttling) stops the
// call: no new request is started and no more retries are made, but requests
// in flight finish, so what they processed is known.
func Run(ctx context.Context, o Limits, chunks [][]int, send Send) ([]int, error) {
	var (
		mu       sync.Mutex
		left     []int
		causes   []error
		stop     = make(chan struct{})
		stopOnce sync.Once
	)
	fail := func(idx []int, cause error, fatal bool) {
		mu.Lock()
		left = append(left, idx...)
		if cause != nil && !slices.ContainsFunc(causes, func(c error) bool { return c.Error() == cause.Error() }) {
			causes = append(causes, cause)
		}
		mu.Unlock()
		if fatal {
			stopOnce.Do(func() { close(stop) })
		}
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return ctx.Err() != nil
		}
	}

	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	for n, c := range chunks {
		select {
		case sem <- struct{}{}:
		case <-stop:
		case <-ctx.Done():
		}
		if stopped() {
			for _, rest := range chunks[n:] {
				fail(rest, ctx.Err(), false)
			}
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			o.retry(ctx, c, send, stop, fail)
		}()
	}
	wg.Wait()
	slices.Sort(left)
	return left, joinCauses(causes...)
}

// joinCauses is errors.Join that returns a single error as it is.
func joinCauses(errs ...error) error {
	errs = slices.DeleteFunc(errs, func(err error) bool { return err == nil })
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// retry sends idx, and then what DynamoDB leaves unprocessed, with backoff.
func (o Limits) retry(ctx context.Context, idx []int, send Send, stop <-chan struct{}, fail func([]int, error, bool)) {
	var throttled error
	for attempt := 0; ; attempt++ {
		left, err := send(ctx, idx)
		switch {
		case err != nil && ctx.Err() == nil && throttles.IsErrorThrottle(err).Bool():
			// Throttled as a whole, after the SDK's own retries: wait like
			// for unprocessed items rather than give up.
			throttled, left = err, idx
		case err != nil:
			fail(idx, err, true)
			return
		}
		if len(left) == 0 {
			return
		}
		idx = left
		wait := time.NewTimer(o.delay(attempt))
		select {
		case <-wait.C:
		case <-stop:
			wait.Stop()
			fail(idx, nil, false)
			return
		case <-ctx.Done():
			wait.Stop()
			fail(idx, joinCauses(ctx.Err(), throttled), false)
			return
		}
		select {
		case <-stop:
			fail(idx, nil, false)
			return
		default:
		}
	}
}
