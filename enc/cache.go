package enc

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"
)

// CacheLimits bound a data-key cache, in the manner of the AWS Encryption
// SDK's caching materials manager. Zero fields take the defaults below.
//
// A cache trades KMS calls (latency, cost, request quota) for exposure: a
// cached plaintext data key lives in process memory for up to MaxAge, and a
// value sealed with a cached key shares that key with up to MaxUses others.
// A cached decrypt also skips the KMS authorisation check for that key until
// the entry expires. Keep the limits as tight as the load allows.
type CacheLimits struct {
	// MaxAge is how long a data key may be used after KMS returned it.
	// Default 5 minutes.
	MaxAge time.Duration
	// MaxUses is how many values one cached data key may seal, counted
	// across calls (encrypt cache only). Default and upper bound 2^32, the
	// limit for AES-GCM with random 96-bit nonces. A single call that seals
	// more values than MaxUses in one group still shares one fresh key among
	// them, as it would without a cache, but that key is not cached.
	MaxUses int64
	// MaxEntries bounds each cache; the least recently used entry goes first.
	// Default 1000. With ContextFrom every distinct context (e.g. tenant) is
	// its own entry.
	MaxEntries int
}

const (
	defaultCacheAge     = 5 * time.Minute
	maxGCMUses          = int64(1) << 32
	defaultCacheEntries = 1000
)

func (l CacheLimits) withDefaults() CacheLimits {
	if l.MaxAge <= 0 {
		l.MaxAge = defaultCacheAge
	}
	if l.MaxUses <= 0 || l.MaxUses > maxGCMUses {
		l.MaxUses = maxGCMUses
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = defaultCacheEntries
	}
	return l
}

// keyCache holds plaintext data keys by an ID. It hands out copies, so an
// entry can be wiped on eviction while a caller is still sealing with its
// copy; callers wipe their copies when done.
type keyCache struct {
	mu      sync.Mutex
	limits  CacheLimits
	now     func() time.Time
	entries map[string]*cacheEntry
	// recent orders entries by last use (front: newest) for LRU eviction;
	// byAge by creation (front: oldest), so expired entries are found and
	// wiped without scanning the whole cache.
	recent, byAge list.List

	// fetching holds the KMS request under way for an id. Callers that miss
	// at the same time wait for it instead of each asking KMS.
	fetching map[string]*flight

	// sweep wipes expired entries when their time comes, so keys do not
	// outlive MaxAge in an idle process; nil while the cache is empty.
	sweep *time.Timer

	// closed is set by close: the cache then stays empty for good.
	closed bool

	// generation counts purges. A key fetched from KMS is cached only if no
	// purge came between the start of its fetch and its put, so a key asked
	// for before ClearCaches does not land in the cache after it.
	generation uint64

	// onEvict, when set, hears of each key dropped for age, uses or room.
	onEvict func(reason string)
}

// flight is one caller's KMS request for a key that others wait on.
type flight struct {
	done       chan struct{}
	err        error  // set before done closes
	generation uint64 // of the cache when the fetch began
}

type cacheEntry struct {
	id        string
	plain     []byte
	encrypted []byte
	created   time.Time
	uses      int64
	inRecent  *list.Element
	inByAge   *list.Element
}

func newKeyCache(l CacheLimits, now func() time.Time) *keyCache {
	return &keyCache{limits: l.withDefaults(), now: now, entries: map[string]*cacheEntry{}, fetching: map[string]*flight{}}
}

// takeOrLead takes id's key from the cache, waiting while another caller
// fetches it. When there is none to take, the caller gets done and must
// fetch the key, put it and call done with the outcome. Looking in the cache
// and becoming the fetcher happen under one lock, so a key put just after a
// miss is never fetched twice. Waiters share the fetcher's failure, so a
// refusing KMS is asked once, not once per waiter; a fetcher that gave up on
// its own context leaves the others to try themselves.
func (c *keyCache) takeOrLead(ctx context.Context, id string, uses int64) (plain, encrypted []byte, done func(error), err error) {
	for {
		c.mu.Lock()
		if plain, encrypted, ok := c.takeLocked(id, uses); ok {
			c.mu.Unlock()
			return plain, encrypted, nil, nil
		}
		if c.closed {
			c.mu.Unlock()
			return nil, nil, nil, errNoSession // only a session's memo closes
		}
		wait, fetching := c.fetching[id]
		if !fetching {
			f := &flight{done: make(chan struct{}), generation: c.generation}
			c.fetching[id] = f
			c.mu.Unlock()
			return nil, nil, func(err error) {
				c.mu.Lock()
				delete(c.fetching, id)
				c.mu.Unlock()
				f.err = err
				close(f.done)
			}, nil
		}
		c.mu.Unlock()
		select {
		case <-wait.done:
			if wait.err != nil && !errors.Is(wait.err, context.Canceled) && !errors.Is(wait.err, context.DeadlineExceeded) {
				return nil, nil, nil, wait.err
			}
		case <-ctx.Done():
			return nil, nil, nil, ctx.Err()
		}
	}
}

// takeLocked returns a copy of the key cached under id and counts uses
// against it; ok is false when there is no live entry with uses to spare.
func (c *keyCache) takeLocked(id string, uses int64) (plain, encrypted []byte, ok bool) {
	c.expireLocked()
	e := c.entries[id]
	if e == nil || e.uses+uses > c.limits.MaxUses {
		return nil, nil, false
	}
	e.uses += uses
	c.recent.MoveToFront(e.inRecent)
	plain = append([]byte(nil), e.plain...)
	if e.uses >= c.limits.MaxUses {
		c.evictLocked(e, EvictUsedUp)
	}
	return plain, e.encrypted, true
}

// put caches a copy of plain under id, already used uses times, replacing
// any entry with that id. A key with no uses left is not cached.
func (c *keyCache) put(id string, plain, encrypted []byte, uses int64) {
	if uses >= c.limits.MaxUses {
		return // keep any entry that still has uses to spare
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.fetching[id]; c.closed || (f != nil && f.generation != c.generation) {
		return
	}
	if old := c.entries[id]; old != nil {
		c.removeLocked(old)
	}
	e := &cacheEntry{
		id:        id,
		plain:     append([]byte(nil), plain...),
		encrypted: encrypted,
		created:   c.now(),
		uses:      uses,
	}
	e.inRecent = c.recent.PushFront(e)
	e.inByAge = c.byAge.PushBack(e)
	c.entries[id] = e
	c.expireLocked()
	for len(c.entries) > c.limits.MaxEntries {
		c.evictLocked(c.recent.Back().Value.(*cacheEntry), EvictFull)
	}
	c.armLocked()
}

// armLocked schedules a sweep for when the oldest entry expires.
func (c *keyCache) armLocked() {
	if c.sweep != nil || c.byAge.Len() == 0 {
		return
	}
	oldest := c.byAge.Front().Value.(*cacheEntry)
	wait := max(oldest.created.Add(c.limits.MaxAge).Sub(c.now()), time.Millisecond)
	var t *time.Timer
	t = time.AfterFunc(wait, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.sweep != t {
			return // stopped by a purge after it fired; another may be armed
		}
		c.sweep = nil
		c.expireLocked()
		c.armLocked()
	})
	c.sweep = t
}

func (c *keyCache) expireLocked() {
	now := c.now()
	for f := c.byAge.Front(); f != nil; f = c.byAge.Front() {
		e := f.Value.(*cacheEntry)
		if now.Sub(e.created) < c.limits.MaxAge {
			return
		}
		c.evictLocked(e, EvictExpired)
	}
}

func (c *keyCache) removeLocked(e *cacheEntry) {
	clear(e.plain)
	c.recent.Remove(e.inRecent)
	c.byAge.Remove(e.inByAge)
	delete(c.entries, e.id)
}

func (c *keyCache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.generation++
	for _, e := range c.entries {
		c.removeLocked(e)
	}
	if c.sweep != nil {
		c.sweep.Stop()
		c.sweep = nil
	}
}

// close purges the cache and keeps it empty: a caller still fetching a key
// when it closes cannot put it back.
func (c *keyCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.generation++
	for _, e := range c.entries {
		c.removeLocked(e)
	}
	if c.sweep != nil {
		c.sweep.Stop()
		c.sweep = nil
	}
}

func (c *keyCache) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked()
	return len(c.entries)
}
