// Package callstats counts the KMS work of one repository operation. The
// repository puts a *Calls in the context it passes to the encryptor, which
// adds to it: an Encryptor's own Stats are shared by every caller, so their
// difference before and after an operation is wrong as soon as two run at
// once.
package callstats

import (
	"context"
	"sync/atomic"
)

// Calls counts the KMS calls and data-key cache lookups made with one
// context. The encryptor may add to it from several goroutines at once.
type Calls struct {
	KMS, CacheHits, CacheMisses atomic.Int64
	// Retries counts requests the operation sent again (unprocessed batch
	// items, throttling, transaction conflicts).
	Retries atomic.Int64
	// parent is the counter of the operation this one runs inside, which
	// counts the same work.
	parent *Calls
}

type key struct{}

// With returns ctx carrying c.
func With(ctx context.Context, c *Calls) context.Context {
	c.parent = From(ctx)
	return context.WithValue(ctx, key{}, c)
}

// From returns the counter ctx carries, or nil.
func From(ctx context.Context) *Calls {
	c, _ := ctx.Value(key{}).(*Calls)
	return c
}

// AddKMS counts n KMS calls against the counter of ctx, if any.
func AddKMS(ctx context.Context, n int64) {
	for c := From(ctx); c != nil && n != 0; c = c.parent {
		c.KMS.Add(n)
	}
}

// Hit counts a data key taken from a cache against the counter of ctx.
func Hit(ctx context.Context) {
	for c := From(ctx); c != nil; c = c.parent {
		c.CacheHits.Add(1)
	}
}

// Miss counts a cache lookup that went to KMS against the counter of ctx.
func Miss(ctx context.Context) {
	for c := From(ctx); c != nil; c = c.parent {
		c.CacheMisses.Add(1)
	}
}

// Retry counts a request sent again against the counter of ctx.
func Retry(ctx context.Context) {
	for c := From(ctx); c != nil; c = c.parent {
		c.Retries.Add(1)
	}
}
