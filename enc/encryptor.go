package enc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure an [Encryptor].
type Options struct {
	// Concurrency bounds the KMS requests one call runs at once. Default 8.
	Concurrency int
}

// Option changes [Options].
type Option func(*Options)

// WithConcurrency bounds the KMS requests one call runs at once.
func WithConcurrency(n int) Option { return func(o *Options) { o.Concurrency = n } }

// Encryptor seals and opens values. It is safe for concurrent use; share one
// per process so its statistics (and caches, when enabled) cover every call.
type Encryptor struct {
	keys  KeyProvider
	opts  Options
	stats counters
}

// New returns an Encryptor that gets data keys from p.
func New(p KeyProvider, opts ...Option) *Encryptor {
	o := Options{Concurrency: 8}
	for _, opt := range opts {
		opt(&o)
	}
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	return &Encryptor{keys: p, opts: o}
}

// Stats counts the KMS work an Encryptor has done.
type Stats struct {
	GenerateDataKeyCalls int64
	DecryptCalls         int64
	// KMSTime is the wall time spent waiting on KMS, summed over calls.
	KMSTime time.Duration
}

type counters struct {
	generate, decrypt, kmsNanos atomic.Int64
}

// Stats returns a snapshot of the counters.
func (e *Encryptor) Stats() Stats {
	return Stats{
		GenerateDataKeyCalls: e.stats.generate.Load(),
		DecryptCalls:         e.stats.decrypt.Load(),
		KMSTime:              time.Duration(e.stats.kmsNanos.Load()),
	}
}

// SealRequest is one value to encrypt.
type SealRequest struct {
	Spec      Spec
	Attribute string // for error messages
	Plaintext []byte
}

// OpenRequest is one stored value to decrypt.
type OpenRequest struct {
	Spec      Spec
	Attribute string // for error messages
	Stored    string // "ENC:..."
}

// Encrypt seals one value. Prefer [Encryptor.Seal] for several values: it
// shares data keys between them.
func (e *Encryptor) Encrypt(ctx context.Context, s Spec, plaintext []byte) (string, error) {
	out, err := e.Seal(ctx, []SealRequest{{Spec: s, Plaintext: plaintext}})
	if err != nil {
		return "", err
	}
	return out[0], nil
}

// Decrypt opens one stored value.
func (e *Encryptor) Decrypt(ctx context.Context, s Spec, stored string) ([]byte, error) {
	out, err := e.Open(ctx, []OpenRequest{{Spec: s, Stored: stored}})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// Seal encrypts every request and returns the stored strings in order. It
// makes one GenerateDataKey call per distinct (key, region, context) and none
// if any request's mode forbids encryption.
func (e *Encryptor) Seal(ctx context.Context, reqs []SealRequest) ([]string, error) {
	groups := map[string][]int{}
	var order []string
	for i, r := range reqs {
		if err := r.Spec.Validate(); err != nil {
			return nil, &Error{Op: OpEncrypt, Attribute: r.Attribute, KeyID: r.Spec.KeyID, Err: err}
		}
		if !r.Spec.Mode.CanEncrypt() {
			return nil, &Error{Op: OpEncrypt, Attribute: r.Attribute, KeyID: r.Spec.KeyID, Err: ErrReadOnly}
		}
		g := r.Spec.keyGroup()
		if _, seen := groups[g]; !seen {
			order = append(order, g)
		}
		groups[g] = append(groups[g], i)
	}
	out := make([]string, len(reqs))
	err := e.forEach(ctx, len(order), func(ctx context.Context, gi int) error {
		idx := groups[order[gi]]
		first := reqs[idx[0]]
		plainKey, encKey, err := e.generate(ctx, first.Spec.keyRef())
		if err != nil {
			return &Error{Op: OpEncrypt, Attribute: first.Attribute, KeyID: first.Spec.KeyID, Err: err}
		}
		defer clear(plainKey)
		aead, err := newGCM(plainKey)
		if err != nil {
			return &Error{Op: OpEncrypt, Attribute: first.Attribute, KeyID: first.Spec.KeyID, Err: fmt.Errorf("%w: %w", ErrInvalidCiphertext, err)}
		}
		for _, i := range idx {
			nonce := make([]byte, nonceSize)
			if _, err := rand.Read(nonce); err != nil {
				return &Error{Op: OpEncrypt, Attribute: reqs[i].Attribute, KeyID: reqs[i].Spec.KeyID, Err: err}
			}
			out[i] = envelope{
				version:      Version1,
				encryptedKey: encKey,
				nonce:        nonce,
				ciphertext:   aead.Seal(nil, nonce, reqs[i].Plaintext, nil),
			}.String()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Open decrypts every request and returns the plaintexts in order. Identical
// encrypted data keys are decrypted once; distinct ones concurrently. It makes
// no KMS call if any request's mode forbids decryption or any value is malformed.
func (e *Encryptor) Open(ctx context.Context, reqs []OpenRequest) ([][]byte, error) {
	envs := make([]envelope, len(reqs))
	groups := map[string][]int{}
	var order []string
	for i, r := range reqs {
		fail := func(err error) error {
			return &Error{Op: OpDecrypt, Attribute: r.Attribute, KeyID: r.Spec.KeyID, Err: err}
		}
		if err := r.Spec.Validate(); err != nil {
			return nil, fail(err)
		}
		if !r.Spec.Mode.CanDecrypt() {
			return nil, fail(ErrWriteOnly)
		}
		env, err := parseEnvelope(r.Stored)
		if err != nil {
			return nil, fail(err)
		}
		if env.version != Version1 {
			return nil, fail(malformed("version %d is not supported here", env.version))
		}
		envs[i] = env
		g := r.Spec.keyGroup() + "\x00\x00" + string(env.encryptedKey)
		if _, seen := groups[g]; !seen {
			order = append(order, g)
		}
		groups[g] = append(groups[g], i)
	}
	out := make([][]byte, len(reqs))
	err := e.forEach(ctx, len(order), func(ctx context.Context, gi int) error {
		idx := groups[order[gi]]
		first := reqs[idx[0]]
		plainKey, err := e.decryptKey(ctx, first.Spec.keyRef(), envs[idx[0]].encryptedKey)
		if err != nil {
			return &Error{Op: OpDecrypt, Attribute: first.Attribute, KeyID: first.Spec.KeyID, Err: err}
		}
		defer clear(plainKey)
		aead, err := newGCM(plainKey)
		if err != nil {
			return &Error{Op: OpDecrypt, Attribute: first.Attribute, KeyID: first.Spec.KeyID, Err: fmt.Errorf("%w: %w", ErrInvalidCiphertext, err)}
		}
		for _, i := range idx {
			env := envs[i]
			plain, err := aead.Open(nil, env.nonce, env.ciphertext, nil)
			if err != nil {
				return &Error{Op: OpDecrypt, Attribute: reqs[i].Attribute, KeyID: reqs[i].Spec.KeyID, Err: fmt.Errorf("%w: authentication failed", ErrInvalidCiphertext)}
			}
			out[i] = plain
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (e *Encryptor) generate(ctx context.Context, ref KeyRef) ([]byte, []byte, error) {
	start := time.Now()
	plain, encrypted, err := e.keys.GenerateDataKey(ctx, ref)
	e.stats.kmsNanos.Add(int64(time.Since(start)))
	e.stats.generate.Add(1)
	if err != nil {
		return nil, nil, err
	}
	if len(encrypted) == 0 || len(encrypted) > 0xFFFF {
		clear(plain)
		return nil, nil, fmt.Errorf("key provider returned a %d-byte encrypted data key", len(encrypted))
	}
	return plain, encrypted, nil
}

func (e *Encryptor) decryptKey(ctx context.Context, ref KeyRef, encrypted []byte) ([]byte, error) {
	start := time.Now()
	plain, err := e.keys.DecryptDataKey(ctx, ref, encrypted)
	e.stats.kmsNanos.Add(int64(time.Since(start)))
	e.stats.decrypt.Add(1)
	return plain, err
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
