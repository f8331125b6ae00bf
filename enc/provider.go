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
	switch len(r.Context) {
	case 0:
	case 1:
		for k, v := range r.Context {
			b = appendLengthPrefixed(appendLengthPrefixed(b, k), v)
		}
	default:
		for _, k := range slices.Sorted(maps.Keys(r.Context)) {
			b = appendLengthPrefixed(appendLengthPrefixed(b, k), r.Context[k])
		}
	}
	return b
}

func appendLengthPrefixed[S ~string | ~[]byte](dst []byte, p S) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(p)))
	return append(dst, p...)
}
