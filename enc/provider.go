package enc

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
)

// KeyRef names the KMS key, region and encryption context of one data key.
type KeyRef struct {
	KeyID   string
	Region  string // empty: the provider's default region
	Context map[string]string
}

// KeyProvider makes and unwraps AES-256 data keys. kmsx.Provider implements
// it over AWS KMS. Errors should wrap this package's sentinels (ErrKeyNotFound,
// ErrAccessDenied, ...) so callers can tell causes apart.
type KeyProvider interface {
	// GenerateDataKey returns a new 32-byte data key and its encrypted form.
	GenerateDataKey(ctx context.Context, key KeyRef) (plaintext, encrypted []byte, err error)
	// DecryptDataKey returns the plaintext of an encrypted data key.
	DecryptDataKey(ctx context.Context, key KeyRef, encrypted []byte) (plaintext []byte, err error)
}

// keyRef returns the key of a value: the spec's key and region, and its
// static context merged with the values taken from the item.
func (s Spec) keyRef(item map[string]string) (KeyRef, error) {
	ref := KeyRef{KeyID: s.KeyID, Region: s.Region, Context: s.Context}
	if len(s.ContextFrom) == 0 && len(item) == 0 {
		return ref, nil
	}
	ref.Context = make(map[string]string, len(s.Context)+len(s.ContextFrom))
	maps.Copy(ref.Context, s.Context)
	for _, k := range slices.Sorted(maps.Keys(s.ContextFrom)) {
		v, ok := item[k]
		switch {
		case !ok:
			return KeyRef{}, fmt.Errorf("%w: no value for context key %q (attribute %s)", ErrItemContext, k, s.ContextFrom[k])
		case v == "":
			return KeyRef{}, fmt.Errorf("%w: empty value for context key %q (attribute %s)", ErrItemContext, k, s.ContextFrom[k])
		}
		ref.Context[k] = v
	}
	for _, k := range slices.Sorted(maps.Keys(item)) {
		if _, ok := s.ContextFrom[k]; !ok {
			return KeyRef{}, fmt.Errorf("%w: context key %q is not in the spec's ContextFrom", ErrItemContext, k)
		}
	}
	return ref, nil
}

// appendID appends an id of the values that may share one data key: the
// same KMS key in the same region under the same encryption context. Parts
// are length-prefixed so no two refs share an id.
func (r KeyRef) appendID(b []byte) []byte {
	b = appendLengthPrefixed(b, r.KeyID)
	b = appendLengthPrefixed(b, r.Region)
	return appendContext(b, r.Context)
}

// appendContext appends the context's pairs, length-prefixed, in key order.
func appendContext(b []byte, ctx map[string]string) []byte {
	switch len(ctx) {
	case 0: // sorting no keys still allocates
		return b
	case 1: // the common case (one tenant), without sorting
		for k, v := range ctx {
			b = appendLengthPrefixed(appendLengthPrefixed(b, k), v)
		}
		return b
	}
	for _, k := range slices.Sorted(maps.Keys(ctx)) {
		b = appendLengthPrefixed(appendLengthPrefixed(b, k), ctx[k])
	}
	return b
}

func appendLengthPrefixed[S ~string | ~[]byte](dst []byte, p S) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(p)))
	return append(dst, p...)
}

// KeyRing is an optional interface of a [KeyProvider], needed by specs with
// PreviousKeyIDs: the provider opens a data key without being told which
// master key sealed it (KMS reads that from the ciphertext), so a value
// costs one call whichever allowed key sealed it, and reports which one did.
// An [Encryptor] refuses a spec with PreviousKeyIDs over a provider without it.
type KeyRing interface {
	// DecryptDataKeyFrom returns the plaintext of a data key sealed under
	// key.KeyID or one of previous, under key.Context. A data key sealed
	// under any other master key fails with an error wrapping
	// ErrKeyNotAllowed, and its plaintext is dropped.
	DecryptDataKeyFrom(ctx context.Context, key KeyRef, previous []string, encrypted []byte) (plaintext []byte, from KeyOrigin, err error)
}

// ReEncrypter is an optional interface of a [KeyProvider] that lets
// [Encryptor.Rewrap] move a version-1 value to another master key without
// the plaintext data key reaching the client (KMS ReEncrypt).
type ReEncrypter interface {
	// ReEncryptDataKey seals an encrypted data key, sealed under key.KeyID
	// or one of previous, anew under key.KeyID with the same context, and
	// reports which key sealed it before; when that was key.KeyID the new
	// form may be dropped. Other source keys fail as in
	// [KeyRing.DecryptDataKeyFrom]. An error wrapping errors.ErrUnsupported
	// makes Rewrap decrypt and seal instead.
	ReEncryptDataKey(ctx context.Context, key KeyRef, previous []string, encrypted []byte) (reencrypted []byte, from KeyOrigin, err error)
}

// KeyOrigin tells which master key had sealed a data key, as a [KeyRing] or
// [ReEncrypter] learnt it.
type KeyOrigin struct {
	// Index is 0 when the data key was sealed under KeyRef.KeyID, i+1 when
	// under previous[i], and -1 when it is not known (with an error).
	Index int
	// Lookups counts the calls the provider made to learn which key an ID
	// names (kms:DescribeKey for an alias), even when it then failed, so
	// that [Stats] counts every KMS call.
	Lookups int
}

// Current reports whether the data key was sealed under KeyRef.KeyID.
func (o KeyOrigin) Current() bool { return o.Index == 0 }
