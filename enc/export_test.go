package enc

import (
	"io"
	"time"

	"github.com/dynoseal/dynoseal/internal/number"
)

// Hooks for tests in package enc_test.

// WithRandom makes nonces come from r, for reproducible output.
func WithRandom(r io.Reader) Option { return func(o *Options) { o.random = r } }

// WithClock replaces the clock the caches read.
func WithClock(now func() time.Time) Option { return func(o *Options) { o.now = now } }

// CacheLens returns the number of live entries in the encrypt and decrypt caches.
func CacheLens(e *Encryptor) (sealing, opening int) {
	if e.sealers != nil {
		sealing = e.sealers.len()
	}
	if e.openers != nil {
		opening = e.openers.len()
	}
	return sealing, opening
}

// CachedKeyBuffers returns the cache's own plaintext key buffers (not
// copies), so a test can check that eviction wipes them.
func CachedKeyBuffers(e *Encryptor) [][]byte {
	var out [][]byte
	for _, c := range []*keyCache{e.sealers, e.openers} {
		if c == nil {
			continue
		}
		c.mu.Lock()
		for _, en := range c.entries {
			out = append(out, en.plain)
		}
		c.mu.Unlock()
	}
	return out
}

var CanonicalNumber = number.Canonical

// SessionKeyBuffers returns the session memo's own plaintext key buffers
// (not copies), so a test can check that Close wipes them.
func SessionKeyBuffers(s *Session) [][]byte {
	s.memo.mu.Lock()
	defer s.memo.mu.Unlock()
	var out [][]byte
	for _, en := range s.memo.entries {
		out = append(out, en.plain)
	}
	return out
}
