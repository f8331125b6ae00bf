package enc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// RewrapRequest asks for one stored value in its spec's current form.
type RewrapRequest struct {
	Spec      Spec   // the spec as it is now (KeyID, PreviousKeyIDs, Version, Context)
	Attribute string // for errors, as in OpenRequest
	Stored    string // an "ENC:" value; "" for a value stored in plaintext
	// Plaintext is the value stored in plaintext (written before the field
	// was encrypted), when Stored is "": it is sealed.
	Plaintext   []byte
	ItemContext map[string]string // as in OpenRequest/SealRequest
	Binding     Binding           // the item's binding; used when the stored or the spec's version is 2
}

// Fail labels err as the failure of this request.
func (r RewrapRequest) Fail(err error) error {
	return &Error{Op: OpRewrap, Attribute: r.Attribute, KeyID: r.Spec.KeyID, Err: err}
}

// Rewrap returns, for each request, the value in its spec's current form —
// sealed under Spec.KeyID, in the spec's envelope version, under its context —
// or "" when it is in that form already; errs[i] is request i's error
// (*enc.Error). Requests are grouped by data key: one KMS call per distinct
// data key (ReEncrypt when only the key changes and the envelope stays version 1,
// so the plaintext data key never reaches the client and the value's ciphertext
// body is kept; otherwise Decrypt, then the values are sealed again with one
// GenerateDataKey per distinct key/region/context for the whole call).
//
// A value is in its current form when KMS reports its data key sealed under
// the key KeyID names and its envelope is the spec's version. Rewrap needs a
// ReadWrite spec, and applies the spec's rules for opening: a value under a
// key that is neither KeyID nor one of PreviousKeyIDs fails with
// ErrKeyNotAllowed, one older than MinVersion with ErrVersionTooOld (so a
// value copied into the table is not laundered into the current form), one
// under another encryption context with ErrInvalidCiphertext. The context
// cannot change: the value is sealed again under the context it opens with.
// Each failure is its request's alone. Rewrap uses no cache and no session:
// it must learn from KMS which key sealed each value; a [Rewrapper] asks
// once per data key for all its calls.
//
// A request with Stored "" and Plaintext set is a value stored in plaintext
// (written before its field was encrypted): it is sealed, with the others.
func (e *Encryptor) Rewrap(ctx context.Context, reqs []RewrapRequest) ([]string, []error) {
	return e.rewrap(ctx, reqs, nil)
}

func (e *Encryptor) rewrap(ctx context.Context, reqs []RewrapRequest, memo *rewrapMemo) ([]string, []error) {
	w := &rewrap{e: e, memo: memo, reqs: reqs, out: make([]string, len(reqs)), errs: make([]error, len(reqs)),
		done: make([]bool, len(reqs)), envs: make([]envelope, len(reqs)), aads: make([][]byte, len(reqs)),
		plain: make([][]byte, len(reqs))}
	defer w.wipe()
	for i := range reqs {
		w.prepare(i)
	}
	err := e.forEach(ctx, len(w.groups.order), func(ctx context.Context, gi int) error {
		w.runGroup(ctx, w.groups.order[gi])
		return nil // each request keeps its own error
	})
	w.failUnfinished(ctx, err)
	w.sealAgain(ctx)
	return w.out, w.errs
}

// rewrap is the state of one Rewrap call. Goroutines write only the
// entries of their own group's requests.
type rewrap struct {
	e      *Encryptor
	memo   *rewrapMemo // what KMS answered in earlier calls of a Rewrapper; nil for none
	reqs   []RewrapRequest
	out    []string
	errs   []error
	done   []bool     // the request has its answer in out or errs
	envs   []envelope // parsed stored values
	aads   [][]byte   // additional data of version-2 stored values
	plain  [][]byte   // opened values waiting to be sealed again
	groups grouper
	// reencrypt marks the groups (by id) that ReEncrypt can move.
	reencrypt map[string]bool
}

func (w *rewrap) fail(i int, err error) {
	w.errs[i], w.done[i] = w.reqs[i].Fail(err), true
}

// prepare checks request i before any KMS call and puts it in its group.
func (w *rewrap) prepare(i int) {
	r := w.reqs[i]
	if r.Stored == "" {
		w.preparePlaintext(i)
		return
	}
	env, aad, ref, err := r.prepare(w.e.keys)
	if err != nil {
		w.fail(i, err)
		return
	}
	w.envs[i], w.aads[i] = env, aad
	byReEncrypt := w.canReEncrypt(r.Spec, env)
	id := appendOpenID(nil, ref, r.Spec.PreviousKeyIDs)
	id = append(appendLengthPrefixed(id, env.encryptedKey), boolByte(byReEncrypt))
	w.groups.add(id, ref, r.Spec.PreviousKeyIDs, i)
	if byReEncrypt {
		if w.reencrypt == nil {
			w.reencrypt = map[string]bool{}
		}
		w.reencrypt[string(id)] = true
	}
}

// preparePlaintext checks request i, a value stored in plaintext, and
// leaves it to be sealed with the others.
func (w *rewrap) preparePlaintext(i int) {
	r := w.reqs[i]
	if r.Plaintext == nil {
		w.fail(i, fmt.Errorf("%w: neither a stored value nor a plaintext", ErrMalformed))
		return
	}
	seal := SealRequest{Spec: r.Spec, Attribute: r.Attribute, Plaintext: r.Plaintext, Binding: r.Binding, ItemContext: r.ItemContext}
	if _, _, err := seal.prepare(w.e.keys); err != nil {
		w.fail(i, err)
		return
	}
	if !r.Spec.Mode.CanDecrypt() {
		w.fail(i, ErrWriteOnly)
		return
	}
	w.plain[i] = slices.Clone(r.Plaintext)
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// prepare checks the request as Open and Seal would, and returns its
// envelope, its additional data and the key it is opened and sealed under.
func (r RewrapRequest) prepare(keys KeyProvider) (envelope, []byte, KeyRef, error) {
	if r.Spec.Mode.CanDecrypt() && !r.Spec.Mode.CanEncrypt() {
		return envelope{}, nil, KeyRef{}, ErrReadOnly
	}
	env, aad, ref, err := OpenRequest{Spec: r.Spec, Stored: r.Stored, Binding: r.Binding, ItemContext: r.ItemContext}.prepare(nil, keys)
	if err != nil || r.Spec.sealVersion() != Version2 {
		return env, aad, ref, err
	}
	_, err = r.Binding.encode() // checked now, so no data key is made for a value that cannot be sealed
	return env, aad, ref, err
}

// canReEncrypt reports whether a value can move to the current key by
// ReEncrypt alone: a version-1 envelope that stays version 1 (version 2
// authenticates the encrypted data key, so a new one breaks its tag), under
// a spec with previous keys (without them a value opens only under KeyID,
// so it is current already), over a provider that can.
func (w *rewrap) canReEncrypt(s Spec, env envelope) bool {
	if env.version != Version1 || s.sealVersion() != Version1 || len(s.PreviousKeyIDs) == 0 {
		return false
	}
	_, ok := w.e.keys.(ReEncrypter)
	return ok
}

// runGroup asks KMS once for the group's data key and answers its requests,
// or leaves their plaintexts to be sealed again.
func (w *rewrap) runGroup(ctx context.Context, g *keyGroup) {
	if w.reencrypt[g.id] {
		err := w.reEncryptGroup(ctx, g)
		if !errors.Is(err, errors.ErrUnsupported) {
			w.failGroup(g, err)
			return
		}
	}
	w.failGroup(g, w.decryptGroup(ctx, g))
}

// failGroup gives err to the group's requests, when there is one.
func (w *rewrap) failGroup(g *keyGroup, err error) {
	if err == nil {
		return
	}
	for _, i := range g.reqs {
		w.fail(i, err)
	}
}

// reEncryptGroup moves the group's data key to the current key in KMS and
// keeps each value's nonce and ciphertext, which version 1 does not bind to
// the encrypted data key.
func (w *rewrap) reEncryptGroup(ctx context.Context, g *keyGroup) error {
	a, ok := w.memo.get(g.id)
	if !ok {
		blob, from, err := w.e.reEncryptKey(ctx, g, w.envs[g.reqs[0]].encryptedKey)
		if err != nil {
			return err
		}
		a = rewrapAnswer{blob: blob, from: from}
		w.memo.put(g.id, a)
	}
	blob, from := a.blob, a.from
	for _, i := range g.reqs {
		if !from.Current() {
			env := w.envs[i]
			env.encryptedKey = blob
			w.out[i] = env.String()
		}
		w.done[i] = true
	}
	return nil
}

func (w *rewrap) decryptGroup(ctx context.Context, g *keyGroup) error {
	plainKey, from, err := w.openingKey(ctx, g)
	if err != nil {
		return err
	}
	defer clear(plainKey)
	aead, err := newGCM(plainKey)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidCiphertext, err)
	}
	for _, i := range g.reqs {
		env := w.envs[i]
		// Never nil, even when empty: a nil plaintext means none is waiting.
		plain, err := aead.Open(make([]byte, 0, len(env.ciphertext)), env.nonce, env.ciphertext, w.aads[i])
		switch {
		case err != nil:
			w.fail(i, fmt.Errorf("%w: authentication failed", ErrInvalidCiphertext))
		case from.Current() && env.version == w.reqs[i].Spec.sealVersion():
			clear(plain)
			w.done[i] = true
		default:
			w.plain[i] = plain
		}
	}
	return nil
}

// openingKey is the group's data key and the key that sealed it, from the
// memo or from KMS. The caller wipes the copy it gets.
func (w *rewrap) openingKey(ctx context.Context, g *keyGroup) ([]byte, KeyOrigin, error) {
	if a, ok := w.memo.get(g.id); ok {
		return slices.Clone(a.plain), a.from, nil
	}
	plainKey, from, err := w.e.decryptFrom(ctx, g, w.envs[g.reqs[0]].encryptedKey)
	if err == nil {
		w.memo.put(g.id, rewrapAnswer{plain: slices.Clone(plainKey), from: from})
	}
	return plainKey, from, err
}

// failUnfinished fails the requests whose group did not run because the
// context ended.
func (w *rewrap) failUnfinished(ctx context.Context, err error) {
	for _, g := range w.groups.order {
		for _, i := range g.reqs {
			if !w.done[i] && w.plain[i] == nil {
				w.fail(i, cmp.Or(err, ctx.Err(), errNotOpened))
			}
		}
	}
}

// sealAgain seals the opened values with one data key per distinct key,
// region and context.
func (w *rewrap) sealAgain(ctx context.Context) {
	var idx []int
	var seals []SealRequest
	for i, p := range w.plain {
		if p != nil {
			r := w.reqs[i]
			idx = append(idx, i)
			seals = append(seals, SealRequest{Spec: r.Spec, Attribute: r.Attribute, Plaintext: p, Binding: r.Binding, ItemContext: r.ItemContext})
		}
	}
	out, errs := w.e.sealEach(ctx, seals)
	for n, i := range idx {
		w.out[i], w.done[i] = out[n], true
		if errs[n] != nil {
			w.out[i] = ""
			w.fail(i, errs[n])
		}
	}
}

func (w *rewrap) wipe() {
	for _, p := range w.plain {
		clear(p)
	}
}

// sealEach is Seal with an error per request: a group whose data key
// cannot be had fails alone. The errors are causes, not yet labelled.
func (e *Encryptor) sealEach(ctx context.Context, reqs []SealRequest) ([]string, []error) {
	errs := make([]error, len(reqs))
	bindings := make([][]byte, len(reqs))
	var groups grouper
	for i, r := range reqs {
		ref, binding, err := r.prepare(e.keys)
		if err != nil {
			errs[i] = err
			continue
		}
		bindings[i] = binding
		groups.add(ref.appendID(nil), ref, nil, i)
	}
	out := make([]string, len(reqs))
	ran := make([]bool, len(groups.order))
	err := e.forEach(ctx, len(groups.order), func(ctx context.Context, gi int) error {
		ran[gi] = true
		g := groups.order[gi]
		if err := e.sealGroup(ctx, g, reqs, bindings, out); err != nil {
			setAll(errs, g.reqs, unlabel(err))
		}
		return nil
	})
	for gi, g := range groups.order {
		if !ran[gi] {
			setAll(errs, g.reqs, cmp.Or(err, ctx.Err(), errNotOpened))
		}
	}
	return out, errs
}

func setAll(errs []error, at []int, err error) {
	for _, i := range at {
		errs[i] = err
	}
}

// unlabel returns the cause of an *Error, so that it can be labelled with
// another request.
func unlabel(err error) error {
	if e, ok := err.(*Error); ok {
		return e.Err
	}
	return err
}

// reEncryptKey asks the provider to move a group's data key to its current key.
func (e *Encryptor) reEncryptKey(ctx context.Context, g *keyGroup, encrypted []byte) ([]byte, KeyOrigin, error) {
	start := time.Now()
	spanCtx, call := e.obs.startKMS(ctx, KMSReEncrypt, g.ref, len(g.previous))
	blob, from, err := e.keys.(ReEncrypter).ReEncryptDataKey(spanCtx, g.ref, g.previous, encrypted)
	e.stats.describe.Add(int64(from.Lookups))
	if errors.Is(err, errors.ErrUnsupported) {
		call.unmade(ctx, from.Lookups)
		return nil, from, err // no call was made
	}
	call.end(ctx, from.Lookups, err)
	e.stats.kmsNanos.Add(int64(time.Since(start)))
	e.stats.reencrypt.Add(1)
	if err == nil && (len(blob) == 0 || len(blob) > 0xFFFF) {
		return nil, from, fmt.Errorf("key provider returned a %d-byte encrypted data key, want 1 to 65535", len(blob))
	}
	return slices.Clip(blob), from, err
}

// Rewrapper rewraps the values of many calls, such as the pages of a table
// migration, asking KMS about each distinct data key once for all of them:
// what KMS answered (the data key and the key that sealed it, or the data
// key moved to the current key) is remembered until Close, for at most
// 10,000 data keys (the oldest go first). Like a session's memo, a
// remembered key skips KMS's authorisation check for the rest of the run.
// It is safe for concurrent use; Close it when the run ends.
type Rewrapper struct {
	e    *Encryptor
	memo *rewrapMemo
}

// Rewrapper starts a run of Rewrap calls that share what KMS answered.
func (e *Encryptor) Rewrapper() *Rewrapper {
	return &Rewrapper{e: e, memo: &rewrapMemo{answers: map[string]rewrapAnswer{}}}
}

// Rewrap is [Encryptor.Rewrap], asking KMS only about data keys that no
// earlier call of the run asked about.
func (r *Rewrapper) Rewrap(ctx context.Context, reqs []RewrapRequest) ([]string, []error) {
	return r.e.rewrap(ctx, reqs, r.memo)
}

// Close wipes the remembered data keys.
func (r *Rewrapper) Close() { r.memo.clear() }

// maxRewrapMemo bounds the data keys a Rewrapper remembers.
const maxRewrapMemo = 10000

type rewrapAnswer struct {
	plain []byte // the data key, for a Decrypt
	blob  []byte // the data key moved to the current key, for a ReEncrypt
	from  KeyOrigin
}

// rewrapMemo is a Rewrapper's memory; a nil memo remembers nothing.
type rewrapMemo struct {
	mu      sync.Mutex
	answers map[string]rewrapAnswer
	order   []string // oldest first
}

func (m *rewrapMemo) get(id string) (rewrapAnswer, bool) {
	if m == nil {
		return rewrapAnswer{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.answers[id]
	return a, ok
}

func (m *rewrapMemo) put(id string, a rewrapAnswer) {
	if m == nil {
		clear(a.plain)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.answers == nil { // closed
		clear(a.plain)
		return
	}
	if len(m.order) >= maxRewrapMemo {
		clear(m.answers[m.order[0]].plain)
		delete(m.answers, m.order[0])
		m.order = m.order[1:]
	}
	m.answers[id] = a
	m.order = append(m.order, id)
}

func (m *rewrapMemo) clear() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range m.answers {
		clear(a.plain)
	}
	m.answers, m.order = nil, nil
}
