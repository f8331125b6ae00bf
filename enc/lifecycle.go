package enc

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// errNoKeyRing is the error of a spec with previous keys over a provider
// that can only decrypt under a key it is told: trying each key in turn
// would cost a KMS call per key and value, so it is refused instead.
var errNoKeyRing = errors.New("spec has PreviousKeyIDs, but the key provider does not implement enc.KeyRing, so it cannot open a data key under whichever allowed key sealed it")

// checkProvider refuses a spec whose PreviousKeyIDs the provider could not
// honour, at its first use rather than at the first old value.
func (s Spec) checkProvider(keys KeyProvider) error {
	if len(s.PreviousKeyIDs) == 0 {
		return nil
	}
	if _, ok := keys.(KeyRing); !ok {
		return fmt.Errorf("%w (provider %T)", errNoKeyRing, keys)
	}
	return nil
}

// checkOpen checks, before any KMS call, that the spec may open values
// with this provider.
func (s Spec) checkOpen(keys KeyProvider) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if !s.Mode.CanDecrypt() {
		return ErrWriteOnly
	}
	return s.checkProvider(keys)
}

// parseStored parses a stored value and refuses envelopes older than the
// spec's MinVersion, before any KMS call: a version-1 value copied into a
// table that has moved to version 2 must not open.
func (s Spec) parseStored(stored string, arena []byte) (envelope, error) {
	env, err := parseEnvelopeInto(stored, arena)
	if err != nil {
		return envelope{}, err
	}
	if env.version < s.MinVersion {
		return envelope{}, fmt.Errorf("%w: version %d, MinVersion %d", ErrVersionTooOld, env.version, s.MinVersion)
	}
	return env, nil
}

// previousMark starts the id of a spec with previous keys. No id without
// it can start so: it would be the length of a 4 GiB key ID.
const previousMark = ^uint32(0)

// appendOpenID appends the id of the data keys a spec opens: its KeyRef and,
// when it has some, its previous keys. Specs that allow different keys
// never share a decrypted key through a cache or session, so a data key KMS
// opened for one spec is used only by specs that would accept it.
func appendOpenID(b []byte, ref KeyRef, previous []string) []byte {
	if len(previous) > 0 {
		b = binary.BigEndian.AppendUint32(b, previousMark)
		b = binary.BigEndian.AppendUint32(b, uint32(len(previous)))
		for _, id := range previous {
			b = appendLengthPrefixed(b, id)
		}
	}
	return ref.appendID(b)
}
