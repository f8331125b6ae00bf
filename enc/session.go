package enc

import (
	"context"
	"errors"
)

// Session opens the values of a run of calls that belong together, such as
// the pages of one query or scan. A data key that one call decrypts is
// remembered and reused by the later calls of the run, so values sealed
// together cost one Decrypt for the whole run instead of one per call.
//
// Make one per run with [Encryptor.Session] and Close it when the run ends:
//
//	s := e.Session()
//	defer s.Close()
//	for page := range pages {
//		plain, err := s.Open(ctx, page)
//		...
//	}
//
// Open checks every request as [Encryptor.Open] does before it looks at the
// memo, so mode rules hold: a WriteOnly spec never opens. Close wipes the
// remembered keys; a closed session refuses to open. A session is safe for
// concurrent use, and goroutines that need the same data key at the same time
// wait for one Decrypt rather than each making their own.
//
// Like a decrypt cache, a remembered key skips KMS's authorisation check for
// the rest of the run; keep a session as short as the run it serves. The
// memo holds at most 1000 keys (the least recently used go first), each for
// at most 5 minutes or the decrypt cache's MaxAge if that is shorter.
// [Encryptor.ClearCaches] wipes the memos of open sessions too. Keys taken
// from the memo count in [Stats].CacheHits. Always Close a session: the
// Encryptor keeps track of open ones (for ClearCaches) until then.
type Session struct {
	e    *Encryptor
	memo *keyCache
}

// errNoSession is the error of a session used after Close, or not made by
// Encryptor.Session.
var errNoSession = errors.New("dynoseal: enc.Session used after Close or not made by Encryptor.Session")

// Session starts a run of Open calls that share decrypted data keys.
func (e *Encryptor) Session() *Session {
	limits := CacheLimits{MaxAge: defaultCacheAge, MaxEntries: defaultCacheEntries}
	if e.opts.DecryptCache != nil {
		limits.MaxAge = min(limits.MaxAge, e.opts.DecryptCache.withDefaults().MaxAge)
	}
	s := &Session{e: e, memo: newKeyCache(limits, e.opts.now)}
	e.sessions.Store(s.memo, struct{}{})
	return s
}

// Open decrypts every request as [Encryptor.Open] does, taking data keys
// that earlier calls of the session decrypted from its memo.
func (s *Session) Open(ctx context.Context, reqs []OpenRequest) ([][]byte, error) {
	if s == nil || s.e == nil || s.memo.isClosed() {
		return nil, errNoSession
	}
	return openAll(s.e.open(ctx, reqs, s.memo, true))
}

// OpenEach opens every request it can, as [Encryptor.OpenEach] does, taking
// data keys that earlier calls of the session decrypted from its memo.
func (s *Session) OpenEach(ctx context.Context, reqs []OpenRequest) ([][]byte, []error) {
	if s == nil || s.e == nil || s.memo.isClosed() {
		errs := make([]error, len(reqs))
		for i := range errs {
			errs[i] = errNoSession
		}
		return make([][]byte, len(reqs)), errs
	}
	return s.e.open(ctx, reqs, s.memo, false)
}

// Close wipes the remembered data keys and ends the session. It may be
// called more than once.
func (s *Session) Close() {
	if s == nil || s.e == nil {
		return
	}
	s.memo.close()
	s.e.sessions.Delete(s.memo)
}
