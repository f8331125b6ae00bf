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
	// OnRetry, when set, hears of each retry before its backoff: attempt
	// (0-based), the entries sent again (0 for Pause) and the throttling
	// error when the request was throttled as a whole. For logs and metrics.
	OnRetry func(ctx context.Context, attempt, entries int, throttle error)
	// OnLeft, when set, hears of the entries a Run gives up on.
	OnLeft func(ctx context.Context, entries int)
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
	r := &run{ctx: ctx, stop: make(chan struct{})}
	if o.Concurrency <= 1 || len(chunks) <= 1 {
		// One at a time in the caller's goroutine: no hand-offs.
		for n, c := range chunks {
			if r.stopped() {
				r.failRest(chunks[n:])
				break
			}
			o.retry(ctx, c, send, r.stop, r.fail)
		}
	} else {
		r.concurrently(o, chunks, send)
	}
	slices.Sort(r.left)
	if o.OnLeft != nil && len(r.left) > 0 {
		o.OnLeft(ctx, len(r.left))
	}
	return r.left, joinCauses(r.causes...)
}

// run is the state of one Run.
type run struct {
	ctx      context.Context
	mu       sync.Mutex
	left     []int
	causes   []error
	stop     chan struct{} // closed on a fatal failure
	stopOnce sync.Once
}

func (r *run) fail(idx []int, cause error, fatal bool) {
	r.mu.Lock()
	r.left = append(r.left, idx...)
	if cause != nil && !slices.ContainsFunc(r.causes, func(c error) bool { return c.Error() == cause.Error() }) {
		r.causes = append(r.causes, cause)
	}
	r.mu.Unlock()
	if fatal {
		r.stopOnce.Do(func() { close(r.stop) })
	}
}

func (r *run) failRest(chunks [][]int) {
	for _, rest := range chunks {
		r.fail(rest, r.ctx.Err(), false)
	}
}

func (r *run) stopped() bool {
	select {
	case <-r.stop:
		return true
	default:
		return r.ctx.Err() != nil
	}
}

// concurrently sends the chunks with at most o.Concurrency in flight.
func (r *run) concurrently(o Limits, chunks [][]int, send Send) {
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	for n, c := range chunks {
		select {
		case sem <- struct{}{}:
		case <-r.stop:
		case <-r.ctx.Done():
		}
		if r.stopped() {
			r.failRest(chunks[n:])
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			o.retry(r.ctx, c, send, r.stop, r.fail)
		}()
	}
	wg.Wait()
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
		o.retrying(ctx, attempt, len(idx), err) // err is nil or a throttle
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

// retrying tells OnRetry, if set, of a retry.
func (o Limits) retrying(ctx context.Context, attempt, entries int, throttle error) {
	if o.OnRetry != nil {
		o.OnRetry(ctx, attempt, entries, throttle)
	}
}

// Pause waits the backoff before retry number attempt (0-based) of a
// request that cannot be split, such as a transaction, or until ctx ends.
func (o Limits) Pause(ctx context.Context, attempt int) error {
	o.retrying(ctx, attempt, 0, nil)
	wait := time.NewTimer(o.delay(attempt))
	defer wait.Stop()
	select {
	case <-wait.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
