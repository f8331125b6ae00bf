package enc

import "context"

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

func (s Spec) keyRef() KeyRef {
	return KeyRef{KeyID: s.KeyID, Region: s.Region, Context: s.Context}
}
