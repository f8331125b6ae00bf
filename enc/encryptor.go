package enc

import (
	"cmp"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure an [Encryptor].
type Options struct {
	// Concurrency bounds the KMS requests one call runs at once. Default 8.
	Concurrency int
	// EncryptCache, when set, lets Seal reuse a data key across calls.
	EncryptCache *CacheLimits
	// DecryptCache, when set, keeps decrypted data keys for later calls.
	DecryptCache *CacheLimits
	// BeaconCache, when set, keeps the beacon keys KMS derived (one per KMS
	// HMAC key and Region) for later calls; MaxUses does not apply.
	BeaconCache *CacheLimits
	// Observer, when set, hears of every KMS call and cache lookup (see
	// WithObserver).
	Observer Observer

	// random supplies nonces and now reads the clock; tests replace them.
	random io.Reader
	now    func() time.Time
}

// Option changes [Options].
type Option func(*Options)

// WithConcurrency bounds the KMS requests one call runs at once.
func WithConcurrency(n int) Option { return func(o *Options) { o.Concurrency = n } }

// WithCache turns on every cache with the same limits: Seal reuses a data
// key across calls until it reaches MaxAge or MaxUses, Open keeps decrypted
// data keys (LRU, at most MaxEntries, each for MaxAge), and Beacons keeps
// beacon keys for MaxAge. Caches are off by default. They never let a spec
// do what its mode forbids: a ReadOnly spec is refused before the encrypt
// cache is consulted, and a WriteOnly spec before the decrypt cache is.
func WithCache(l CacheLimits) Option {
	return func(o *Options) { o.EncryptCache, o.DecryptCache, o.BeaconCache = &l, &l, &l }
}

// WithEncryptCache turns on the encrypt-side cache only.
func WithEncryptCache(l CacheLimits) Option { return func(o *Options) { o.EncryptCache = &l } }

// WithDecryptCache turns on the decrypt-side cache only.
func WithDecryptCache(l CacheLimits) Option { return func(o *Options) { o.DecryptCache = &l } }

// WithBeaconCache turns on the beacon-key cache only: without it, every
// call of Beacons (every write or lookup of an item type with beacons)
// costs one kms:GenerateMac per KMS HMAC key it uses.
func WithBeaconCache(l CacheLimits) Option { return func(o *Options) { o.BeaconCache = &l } }

// Encryptor seals and opens values. It is safe for concurrent use; share one
// per process so its statistics and caches cover every call.
type Encryptor struct {
	keys    KeyProvider
	opts    Options
	stats   counters
	sealers *keyCache // nil when off
	openers *keyCache // nil when off
	// beaconKeys holds root beacon keys by KMS key and Region; nil when off.
	beaconKeys *keyCache
	obs        *observer // nil without telemetry
	// sessions holds the memos of open sessions (*keyCache -> struct{}),
	// so that ClearCaches reaches them.
	sessions sync.Map
}

// New returns an Encryptor that gets data keys from p.
func New(p KeyProvider, opts ...Option) *Encryptor {
	o := Options{Concurrency: 8, random: rand.Reader, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	e := &Encryptor{keys: p, opts: o, obs: newObserver(o)}
	if o.EncryptCache != nil {
		e.sealers = newKeyCache(*o.EncryptCache, o.now)
		e.sealers.onEvict = e.obs.evicted(CacheEncrypt)
	}
	if o.DecryptCache != nil {
		e.openers = newKeyCache(*o.DecryptCache, o.now)
		e.openers.onEvict = e.obs.evicted(CacheDecrypt)
	}
	if o.BeaconCache != nil {
		e.beaconKeys = newKeyCache(*o.BeaconCache, o.now)
		e.beaconKeys.onEvict = e.obs.evicted(CacheBeacon)
	}
	return e
}

// ClearCaches wipes and drops every cached data key, those remembered by open
// [Session]s included, e.g. before a process hands its memory back or after a
// key's permissions were revoked.
func (e *Encryptor) ClearCaches() {
	for _, c := range []*keyCache{e.sealers, e.openers, e.beaconKeys} {
		if c != nil {
			c.purge()
		}
	}
	e.sessions.Range(func(memo, _ any) bool {
		memo.(*keyCache).purge()
		return true
	})
}

// Stats counts the KMS work an Encryptor has done.
type Stats struct {
	GenerateDataKeyCalls int64
	DecryptCalls         int64
	// CacheHits counts data keys taken from a cache or a [Session]'s memo
	// instead of KMS, one per group of values a call shares a key among;
	// CacheMisses counts the cache lookups that found nothing and went to
	// KMS (a session's memo counts no misses). Both stay 0 without caches
	// and sessions.
	CacheHits   int64
	CacheMisses int64
	// ReEncryptCalls counts KMS ReEncrypt calls made by [Encryptor.Rewrap].
	ReEncryptCalls int64
	// DescribeKeyCalls counts the lookups a provider made to learn which
	// key an alias names, for specs with PreviousKeyIDs (kms:DescribeKey).
	DescribeKeyCalls int64
	// GenerateMacCalls counts the KMS GenerateMac calls that derived
	// beacon keys ([Encryptor.Beacons]).
	GenerateMacCalls int64
	// KMSTime is the wall time spent waiting on KMS, summed over calls.
	KMSTime time.Duration
}

type counters struct {
	generate, decrypt, reencrypt, describe, mac, hits, misses, kmsNanos atomic.Int64
}

// Stats returns a snapshot of the counters.
func (e *Encryptor) Stats() Stats {
	return Stats{
		GenerateDataKeyCalls: e.stats.generate.Load(),
		DecryptCalls:         e.stats.decrypt.Load(),
		CacheHits:            e.stats.hits.Load(),
		CacheMisses:          e.stats.misses.Load(),
		ReEncryptCalls:       e.stats.reencrypt.Load(),
		DescribeKeyCalls:     e.stats.describe.Load(),
		GenerateMacCalls:     e.stats.mac.Load(),
		KMSTime:              time.Duration(e.stats.kmsNanos.Load()),
	}
}

// SealRequest is one value to encrypt.
type SealRequest struct {
	Spec      Spec
	Attribute string // for error messages
	Plaintext []byte
	// Binding ties the value to its attribute and item; required when
	// Spec.Version is 2 and unused otherwise.
	Binding Binding
	// ItemContext holds the encryption context taken from the item: one
	// non-empty value for every key of Spec.ContextFrom, and nothing else.
	ItemContext map[string]string
}

// OpenRequest is one stored value to decrypt.
type OpenRequest struct {
	Spec      Spec
	Attribute string // for error messages
	Stored    string // "ENC:..."
	// Binding must equal the one the value was sealed with when the value
	// is a version-2 envelope (whatever Spec.Version says); version-1
	// values ignore it.
	Binding Binding
	// ItemContext is as in [SealRequest].
	ItemContext map[string]string
}

// Encrypt seals one value. Prefer [Encryptor.Seal] for several values: it
// shares data keys between them. Encrypt has no way to pass a binding or item
// context: for a spec with Version 2 or ContextFrom use [Encryptor.SealOne].
func (e *Encryptor) Encrypt(ctx context.Context, s Spec, plaintext []byte) (string, error) {
	return e.SealOne(ctx, SealRequest{Spec: s, Plaintext: plaintext})
}

// Decrypt opens one stored value. For version-2 values or a spec with
// ContextFrom use [Encryptor.OpenOne].
func (e *Encryptor) Decrypt(ctx context.Context, s Spec, stored string) ([]byte, error) {
	return e.OpenOne(ctx, OpenRequest{Spec: s, Stored: stored})
}

// SealOne seals one value described by a full request, with its binding and
// item context.
func (e *Encryptor) SealOne(ctx context.Context, r SealRequest) (string, error) {
	out, err := e.Seal(ctx, []SealRequest{r})
	if err != nil {
		return "", err
	}
	return out[0], nil
}

// OpenOne opens one stored value described by a full request.
func (e *Encryptor) OpenOne(ctx context.Context, r OpenRequest) ([]byte, error) {
	out, err := e.Open(ctx, []OpenRequest{r})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// keyGroup is the requests of one call that share a data key.
type keyGroup struct {
	id   string
	ref  KeyRef
	reqs []int
	// previous are the spec's PreviousKeyIDs for a group being opened: the
	// other keys its data key may be sealed under.
	previous []string
}

// grouper collects requests into key groups in first-seen order.
type grouper struct {
	byID  map[string]*keyGroup
	order []*keyGroup
}

func (g *grouper) add(id []byte, ref KeyRef, previous []string, i int) {
	if g.byID == nil {
		g.byID = map[string]*keyGroup{}
	}
	kg := g.byID[string(id)] // no allocation for the lookup
	if kg == nil {
		kg = &keyGroup{id: string(id), ref: ref, previous: previous}
		g.byID[kg.id] = kg
		g.order = append(g.order, kg)
	}
	kg.reqs = append(kg.reqs, i)
}

// Seal encrypts every request and returns the stored strings in order. It
// makes one GenerateDataKey call per distinct (key, region, context), fewer
// with an encrypt cache, and none if any request is invalid or its mode
// forbids encryption.
func (e *Encryptor) Seal(ctx context.Context, reqs []SealRequest) ([]string, error) {
	var groups grouper
	var scratch []byte
	bindings := make([][]byte, len(reqs)) // encoded bindings of version-2 requests
	for i, r := range reqs {
		ref, binding, err := r.prepare(e.keys)
		if err != nil {
			return nil, indexed(r.Fail(err), i)
		}
		bindings[i] = binding
		scratch = ref.appendID(scratch[:0])
		groups.add(scratch, ref, nil, i)
	}
	out := make([]string, len(reqs))
	err := e.forEach(ctx, len(groups.order), func(ctx context.Context, gi int) error {
		g := groups.order[gi]
		return indexed(e.sealGroup(ctx, g, reqs, bindings, out), g.reqs[0])
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// prepare checks a request before any KMS call and returns the key it is
// sealed under and, for version 2, its encoded binding.
func (r SealRequest) prepare(keys KeyProvider) (KeyRef, []byte, error) {
	if err := r.Spec.Validate(); err != nil {
		return KeyRef{}, nil, err
	}
	if !r.Spec.Mode.CanEncrypt() {
		return KeyRef{}, nil, ErrReadOnly
	}
	if err := r.Spec.checkProvider(keys); err != nil {
		return KeyRef{}, nil, err
	}
	ref, err := r.Spec.keyRef(r.ItemContext)
	if err != nil || r.Spec.sealVersion() != Version2 {
		return ref, nil, err
	}
	binding, err := r.Binding.encode()
	return ref, binding, err
}

// sealGroup seals the requests of one group under one data key, with one
// GCM cipher and one read of random nonces for all of them.
func (e *Encryptor) sealGroup(ctx context.Context, g *keyGroup, reqs []SealRequest, bindings [][]byte, out []string) error {
	first := reqs[g.reqs[0]]
	plainKey, encKey, err := e.sealingKey(ctx, g)
	if err != nil {
		return first.Fail(err)
	}
	defer clear(plainKey)
	aead, err := newGCM(plainKey)
	if err != nil {
		return first.Fail(fmt.Errorf("%w: %w", ErrInvalidCiphertext, err))
	}
	nonces := make([]byte, nonceSize*len(g.reqs))
	if _, err := io.ReadFull(e.opts.random, nonces); err != nil {
		return first.Fail(fmt.Errorf("read random nonces: %w", err))
	}
	v2 := envelope{version: Version2, encryptedKey: encKey}
	var scratch []byte
	for n, i := range g.reqs {
		r := reqs[i]
		version := r.Spec.sealVersion()
		var aad []byte
		if version == Version2 {
			aad = append(v2.appendHeader(make([]byte, 0, v2.headerLen()+len(bindings[i]))), bindings[i]...)
		}
		out[i], scratch = sealEnvelope(aead, version, encKey, nonces[n*nonceSize:(n+1)*nonceSize], r.Plaintext, aad, scratch)
	}
	return nil
}

// sealingKey returns a data key for the group's values: from the encrypt
// cache when one is live with uses to spare, else from KMS.
func (e *Encryptor) sealingKey(ctx context.Context, g *keyGroup) (plain, encrypted []byte, err error) {
	uses := int64(len(g.reqs))
	if e.sealers != nil {
		var done func(error)
		if plain, encrypted, done, err = e.sealers.takeOrLead(ctx, g.id, uses); err != nil {
			return nil, nil, err
		}
		if done == nil {
			e.stats.hits.Add(1)
			e.obs.hit(ctx, CacheEncrypt)
			return plain, encrypted, nil
		}
		e.stats.misses.Add(1)
		e.obs.miss(ctx, CacheEncrypt)
		defer func() { done(err) }() // err is the named result: what KMS said
	}
	plain, encrypted, err = e.generate(ctx, g.ref)
	if err != nil {
		return nil, nil, err
	}
	if e.sealers != nil {
		e.sealers.put(g.id, plain, encrypted, uses)
	}
	return plain, encrypted, nil
}

// Open decrypts every request and returns the plaintexts in order. Identical
// encrypted data keys are decrypted once, distinct ones concurrently, cached
// ones not at all. It makes no KMS call if any request's mode forbids
// decryption or any value is malformed. To share decrypted data keys across
// several calls, e.g. the pages of one query, open them in a [Session]; to
// open what can be opened when some values cannot, use [Encryptor.OpenEach].
func (e *Encryptor) Open(ctx context.Context, reqs []OpenRequest) ([][]byte, error) {
	return openAll(e.open(ctx, reqs, nil, true))
}

// OpenEach decrypts every request it can and returns, in order, each
// plaintext or the *Error that kept it closed. A value that is malformed,
// fails to authenticate or whose data key KMS refuses fails alone; the
// values that share a data key fail together only when that key does.
func (e *Encryptor) OpenEach(ctx context.Context, reqs []OpenRequest) ([][]byte, []error) {
	return e.open(ctx, reqs, nil, false)
}

// openAll turns per-request results into all or nothing: the first error,
// with every plaintext wiped.
func openAll(plain [][]byte, errs []error) ([][]byte, error) {
	for _, err := range errs {
		if err != nil {
			for _, p := range plain {
				clear(p)
			}
			return nil, err
		}
	}
	return plain, nil
}

// open is OpenEach that takes data keys from memo, and remembers the ones it
// decrypts there, when memo is not nil. With whole set, a request that fails
// its checks fails the call before any KMS call.
func (e *Encryptor) open(ctx context.Context, reqs []OpenRequest, memo *keyCache, whole bool) ([][]byte, []error) {
	scratch := openScratches.Get().(*openScratch)
	defer scratch.release()
	envs := scratch.envelopes(len(reqs))
	aads := scratch.additional(len(reqs))
	errs := make([]error, len(reqs))
	var groups grouper
	var id []byte
	// All values decode into one buffer and open in place there: the
	// plaintexts alias it, each capped to its own part.
	arena := make([]byte, 0, decodedSize(reqs))
	for i, r := range reqs {
		env, aad, ref, err := r.prepare(arena[len(arena):], e.keys)
		if err == nil {
			arena = arena[:len(arena)+headerSize+len(env.encryptedKey)+nonceSize+len(env.ciphertext)]
		}
		if err != nil {
			errs[i] = r.Fail(err)
			if whole {
				return nil, errs
			}
			continue
		}
		envs[i], aads[i] = env, aad
		id = appendLengthPrefixed(appendOpenID(id[:0], ref, r.Spec.PreviousKeyIDs), env.encryptedKey)
		groups.add(id, ref, r.Spec.PreviousKeyIDs, i)
	}
	out := make([][]byte, len(reqs))
	err := e.forEach(ctx, len(groups.order), func(ctx context.Context, gi int) error {
		g := groups.order[gi]
		plainKey, err := e.openingKey(ctx, g, envs[g.reqs[0]].encryptedKey, memo)
		var aead cipher.AEAD
		if err == nil {
			defer clear(plainKey)
			if aead, err = newGCM(plainKey); err != nil {
				err = fmt.Errorf("%w: %w", ErrInvalidCiphertext, err)
			}
		}
		for _, i := range g.reqs {
			if err != nil {
				errs[i] = reqs[i].Fail(err)
				continue
			}
			env := envs[i]
			if out[i], errs[i] = aead.Open(env.ciphertext[:0], env.nonce, env.ciphertext, aads[i]); errs[i] != nil {
				errs[i] = reqs[i].Fail(fmt.Errorf("%w: authentication failed", ErrInvalidCiphertext))
			}
		}
		return nil // each request keeps its own error
	})
	// Groups forEach did not start, because the context ended, have
	// neither a plaintext nor an error yet: they failed with the context.
	for _, g := range groups.order {
		for _, i := range g.reqs {
			if out[i] == nil && errs[i] == nil {
				errs[i] = reqs[i].Fail(cmp.Or(err, ctx.Err(), errNotOpened))
			}
		}
	}
	return out, errs
}

// errNotOpened is the error of a value whose group did not run, when the
// context says nothing; it would be a bug in forEach.
var errNotOpened = errors.New("dynoseal: value was not opened")

// openScratch holds the slices an open call uses only inside itself, kept
// between calls: for a large read they are a good part of what it allocates.
type openScratch struct {
	envs []envelope
	aads [][]byte
}

var openScratches = sync.Pool{New: func() any { return new(openScratch) }}

func (s *openScratch) envelopes(n int) []envelope {
	s.envs = slices.Grow(s.envs[:0], n)[:n]
	return s.envs
}

func (s *openScratch) additional(n int) [][]byte {
	s.aads = slices.Grow(s.aads[:0], n)[:n]
	return s.aads
}

// release drops the references to this call's values and keeps the slices.
func (s *openScratch) release() {
	clear(s.envs)
	clear(s.aads)
	openScratches.Put(s)
}

// prepare checks a request before any KMS call and returns its envelope, the
// additional data it authenticates and the key it was sealed under. The
// value's own version decides whether it is bound, so a spec moved to
// version 2 still opens version-1 values and one moved back still opens
// version-2 values.
func (r OpenRequest) prepare(arena []byte, keys KeyProvider) (envelope, []byte, KeyRef, error) {
	if err := r.Spec.checkOpen(keys); err != nil {
		return envelope{}, nil, KeyRef{}, err
	}
	env, err := r.Spec.parseStored(r.Stored, arena)
	if err != nil {
		return envelope{}, nil, KeyRef{}, err
	}
	ref, err := r.Spec.keyRef(r.ItemContext)
	if err != nil {
		return envelope{}, nil, KeyRef{}, err
	}
	if env.version != Version2 {
		return env, nil, ref, nil
	}
	b, err := r.Binding.encode()
	if err != nil {
		return envelope{}, nil, KeyRef{}, err
	}
	return env, append(env.appendHeader(make([]byte, 0, env.headerLen()+len(b))), b...), ref, nil
}

// decodedSize is at least the decoded size of every stored value of reqs.
func decodedSize(reqs []OpenRequest) int {
	n := 0
	for _, r := range reqs {
		n += b64.DecodedLen(max(len(r.Stored)-len(Prefix), 0))
	}
	return n
}

// Fail labels err as the failure of this request: an [*Error] naming its
// attribute and key, e.g. for a value that could not even be read.
func (r OpenRequest) Fail(err error) error {
	return &Error{Op: OpDecrypt, Attribute: r.Attribute, KeyID: r.Spec.KeyID, Err: err}
}

// Fail labels err as the failure of this request: an [*Error] naming its
// attribute and key, e.g. for a value that could not be encoded.
func (r SealRequest) Fail(err error) error {
	return &Error{Op: OpEncrypt, Attribute: r.Attribute, KeyID: r.Spec.KeyID, Err: err}
}

// openingKey returns the plaintext of the group's encrypted data key: from
// the session's memo or the decrypt cache when they hold it, else from KMS.
// memo is nil outside a session.
func (e *Encryptor) openingKey(ctx context.Context, g *keyGroup, encrypted []byte, memo *keyCache) (plain []byte, err error) {
	if memo == nil {
		return e.cachedOpeningKey(ctx, g, encrypted)
	}
	// The memo is keyed like the decrypt cache, by key, region, context and
	// encrypted data key, so a hit is exactly the key KMS would return.
	plain, _, done, err := memo.takeOrLead(ctx, g.id, 0)
	if err != nil {
		return nil, err
	}
	if done == nil {
		e.stats.hits.Add(1)
		e.obs.hit(ctx, CacheSession)
		return plain, nil
	}
	defer func() { done(err) }() // err is the named result: what KMS said
	if plain, err = e.cachedOpeningKey(ctx, g, encrypted); err != nil {
		return nil, err
	}
	if len(plain) == dataKeySize {
		memo.put(g.id, plain, nil, 0)
	}
	return plain, nil
}

// cachedOpeningKey returns the plaintext of the group's encrypted data key:
// from the decrypt cache when it holds it, else from KMS.
func (e *Encryptor) cachedOpeningKey(ctx context.Context, g *keyGroup, encrypted []byte) ([]byte, error) {
	return e.cachedKey(ctx, e.openers, CacheDecrypt, g.id, dataKeySize, func() ([]byte, error) {
		return e.decryptKey(ctx, g, encrypted)
	})
}

// cachedKey returns the key cached under id in c (nil: no cache), or the
// one fetch gets, which it caches when it has the size a key of c has.
// Callers of one id share one fetch (see keyCache.takeOrLead).
func (e *Encryptor) cachedKey(ctx context.Context, c *keyCache, cache, id string, size int, fetch func() ([]byte, error)) (key []byte, err error) {
	if c != nil {
		var done func(error)
		if key, _, done, err = c.takeOrLead(ctx, id, 0); err != nil {
			return nil, err
		}
		if done == nil {
			e.stats.hits.Add(1)
			e.obs.hit(ctx, cache)
			return key, nil
		}
		e.stats.misses.Add(1)
		e.obs.miss(ctx, cache)
		defer func() { done(err) }() // err is the named result: what KMS said
	}
	if key, err = fetch(); err != nil {
		return nil, err
	}
	if c != nil && len(key) == size {
		c.put(id, key, nil, 0)
	}
	return key, nil
}

func (e *Encryptor) generate(ctx context.Context, ref KeyRef) ([]byte, []byte, error) {
	start := time.Now()
	spanCtx, call := e.obs.startKMS(ctx, KMSGenerateDataKey, ref, 0)
	plain, encrypted, err := e.keys.GenerateDataKey(spanCtx, ref)
	call.end(ctx, 0, err)
	e.stats.kmsNanos.Add(int64(time.Since(start)))
	e.stats.generate.Add(1)
	if err != nil {
		return nil, nil, err
	}
	if len(plain) != dataKeySize || len(encrypted) == 0 || len(encrypted) > 0xFFFF {
		clear(plain)
		return nil, nil, fmt.Errorf("key provider returned a %d-byte data key and a %d-byte encrypted data key, want %d bytes and 1 to 65535", len(plain), len(encrypted), dataKeySize)
	}
	return plain, encrypted, nil
}

func (e *Encryptor) decryptKey(ctx context.Context, g *keyGroup, encrypted []byte) ([]byte, error) {
	plain, _, err := e.decryptFrom(ctx, g, encrypted)
	return plain, err
}

// decryptFrom decrypts a group's data key, with the provider's KeyRing when
// the spec has previous keys, and says which key had sealed it.
func (e *Encryptor) decryptFrom(ctx context.Context, g *keyGroup, encrypted []byte) ([]byte, KeyOrigin, error) {
	start := time.Now()
	var plain []byte
	var from KeyOrigin
	var err error
	spanCtx, call := e.obs.startKMS(ctx, KMSDecrypt, g.ref, len(g.previous))
	if len(g.previous) == 0 {
		plain, err = e.keys.DecryptDataKey(spanCtx, g.ref, encrypted)
	} else {
		plain, from, err = e.keys.(KeyRing).DecryptDataKeyFrom(spanCtx, g.ref, g.previous, encrypted)
	}
	call.end(ctx, from.Lookups, err)
	e.stats.kmsNanos.Add(int64(time.Since(start)))
	e.stats.decrypt.Add(1)
	e.stats.describe.Add(int64(from.Lookups))
	return checkedKey(plain, from, err)
}

// checkedKey refuses a data key of the wrong size, wiping it.
func checkedKey(plain []byte, from KeyOrigin, err error) ([]byte, KeyOrigin, error) {
	if err == nil && len(plain) != dataKeySize {
		clear(plain)
		return nil, from, fmt.Errorf("key provider returned a %d-byte data key, want %d", len(plain), dataKeySize)
	}
	return plain, from, err
}

// forEach runs fn for 0..n-1 with at most Concurrency at once and returns the
// error of the lowest index that failed. The first failure cancels the rest.
func (e *Encryptor) forEach(ctx context.Context, n int, fn func(context.Context, int) error) error {
	switch n {
	case 0:
		return nil
	case 1:
		return fn(ctx, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, n)
	sem := make(chan struct{}, e.opts.Concurrency)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		if ctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if errs[i] = fn(ctx, i); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}
