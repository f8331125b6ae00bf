package enc

import (
	"context"
	"errors"

	"github.com/dynoseal/dynoseal/internal/callstats"
)

// Names of the KMS operations an [Observer] hears of.
const (
	KMSGenerateDataKey = "GenerateDataKey"
	KMSDecrypt         = "Decrypt"
	KMSReEncrypt       = "ReEncrypt"
	KMSDescribeKey     = "DescribeKey"
	KMSGenerateMac     = "GenerateMac"
)

// Names of the data-key caches an [Observer] hears of.
const (
	CacheEncrypt = "encrypt" // the encrypt cache (WithCache, WithEncryptCache)
	CacheDecrypt = "decrypt" // the decrypt cache (WithCache, WithDecryptCache)
	CacheSession = "session" // a Session's memo
	CacheBeacon  = "beacon"  // the beacon-key cache (WithCache, WithBeaconCache)
)

// Reasons a cache drops a data key, for [Observer].CacheEvicted.
const (
	EvictExpired = "expired" // older than MaxAge
	EvictUsedUp  = "used_up" // sealed MaxUses values
	EvictFull    = "full"    // made room for another (MaxEntries)
)

// Observer hears of an Encryptor's KMS calls and data-key cache lookups,
// for tracing, metrics and logs. kmsx.Telemetry makes one over the AWS
// SDK's tracing and metrics interfaces, so OpenTelemetry plugs in through
// the SDK's adapters. An Observer is told key IDs, Regions, operations and
// outcomes, never values, data keys or encryption contexts. Its methods are
// called from many goroutines at once.
type Observer interface {
	// StartKMS is called before a KMS call (op is one of the KMS...
	// constants) under key; previous is the number of previous keys the
	// call may accept. It returns the context for the call and the
	// function to call after it, with the DescribeKey lookups the provider
	// made and its error (one wrapping errors.ErrUnsupported when the
	// provider declined without asking KMS).
	StartKMS(ctx context.Context, op string, key KeyRef, previous int) (context.Context, func(lookups int, err error))
	// CacheLookup is called for each lookup in a cache (one of the
	// Cache... constants): hit says the data key came from it.
	CacheLookup(ctx context.Context, cache string, hit bool)
	// CacheEvicted is called when a cache drops a data key (reason is one
	// of the Evict... constants). It runs under the cache's lock: it must
	// not block.
	CacheEvicted(cache, reason string)
}

// WithObserver has o hear of every KMS call and cache lookup. Default: none.
func WithObserver(o Observer) Option { return func(opts *Options) { opts.Observer = o } }

// observer wraps an encryptor's Observer; nil when there is none, so that
// a call costs a nil check. The counts of the operation in the context
// (see internal/callstats) are kept either way.
type observer struct{ o Observer }

func newObserver(o Options) *observer {
	if o.Observer == nil {
		return nil
	}
	return &observer{o: o.Observer}
}

// kmsCall is one KMS call under way.
type kmsCall struct {
	done func(lookups int, err error) // nil without an Observer
}

// startKMS starts observing a KMS call on ref's key.
func (ob *observer) startKMS(ctx context.Context, op string, ref KeyRef, previous int) (context.Context, kmsCall) {
	if ob == nil {
		return ctx, kmsCall{}
	}
	ctx, done := ob.o.StartKMS(ctx, op, ref, previous)
	return ctx, kmsCall{done: done}
}

// end counts the call, and the key lookups it made, against the operation
// in ctx, and tells the observer. err is what the provider said.
func (c kmsCall) end(ctx context.Context, lookups int, err error) {
	callstats.AddKMS(ctx, 1+int64(lookups))
	if c.done != nil {
		c.done(lookups, err)
	}
}

// unmade ends the observation of a call the provider declined without
// asking KMS (ReEncrypt it does not support), counting only its lookups.
func (c kmsCall) unmade(ctx context.Context, lookups int) {
	callstats.AddKMS(ctx, int64(lookups))
	if c.done != nil {
		c.done(lookups, errors.ErrUnsupported)
	}
}

// hit counts a data key taken from cache instead of KMS.
func (ob *observer) hit(ctx context.Context, cache string) {
	callstats.Hit(ctx)
	if ob != nil {
		ob.o.CacheLookup(ctx, cache, true)
	}
}

// miss counts a cache lookup that went to KMS.
func (ob *observer) miss(ctx context.Context, cache string) {
	callstats.Miss(ctx)
	if ob != nil {
		ob.o.CacheLookup(ctx, cache, false)
	}
}

// evicted returns what a cache calls when it drops a key, or nil when
// nobody listens.
func (ob *observer) evicted(cache string) func(reason string) {
	if ob == nil {
		return nil
	}
	return func(reason string) { ob.o.CacheEvicted(cache, reason) }
}

// evictLocked removes e, telling the observer why.
func (c *keyCache) evictLocked(e *cacheEntry, reason string) {
	c.removeLocked(e)
	if c.onEvict != nil {
		c.onEvict(reason)
	}
}
