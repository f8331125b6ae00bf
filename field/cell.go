package field

import "github.com/dynoseal/dynoseal/enc"

// Cell is implemented by *Encrypted[T] for every T. Repositories use it to
// seal values before a write and to open them after a read; application code
// does not need it.
type Cell interface {
	// PendingPlaintext returns the bytes to seal when the value is new,
	// changed or legacy plaintext; ok is false when there is nothing to seal.
	PendingPlaintext() (plaintext []byte, ok bool, err error)
	// SetSealed records stored as the sealed form of the pending value.
	SetSealed(stored string)
	// StoredCiphertext returns the loaded sealed form when it still has to be opened.
	StoredCiphertext() (stored string, ok bool)
	// SetOpened records the plaintext of the stored value.
	SetOpened(plaintext []byte) error
	// SetOpenError makes Value fail with err, e.g. enc.ErrWriteOnly.
	SetOpenError(err error)
	// KnownPlaintext returns the bytes of the plaintext when the value holds
	// it, so a sealed value can be sealed again for another item.
	KnownPlaintext() (plaintext []byte, ok bool, err error)
	// Origin returns what SetOrigin recorded: where a sealed value belongs
	// (the item and context it is bound to), or "" when that is unknown.
	Origin() string
	// SetOrigin records where the sealed value belongs.
	SetOrigin(origin string)
}

var _ Cell = (*Encrypted[string])(nil)

// PendingPlaintext implements Cell.
func (e *Encrypted[T]) PendingPlaintext() ([]byte, bool, error) {
	if e.state == nil || !e.state.pending {
		return nil, false, nil
	}
	b, err := encodePlain(*e.state.value)
	return b, err == nil, err
}

// SetSealed implements Cell.
func (e *Encrypted[T]) SetSealed(stored string) {
	if e.state == nil || !enc.IsEncrypted(stored) {
		return
	}
	s := *e.state
	s.sealed, s.pending = &sealedForm{stored: stored}, false // bound to nothing until SetOrigin says where
	e.state = &s
}

// StoredCiphertext implements Cell.
func (e *Encrypted[T]) StoredCiphertext() (string, bool) {
	s := e.state
	if s == nil || s.hasValue || s.stored() == "" {
		return "", false
	}
	return s.stored(), true
}

// SetOpened implements Cell.
func (e *Encrypted[T]) SetOpened(plaintext []byte) error {
	if e.state == nil {
		return nil
	}
	v, err := decodePlain[T](plaintext)
	if err != nil {
		return err
	}
	s := *e.state
	s.value, s.hasValue, s.openErr = &v, true, nil
	e.state = &s
	return nil
}

// SetOpenError implements Cell.
func (e *Encrypted[T]) SetOpenError(err error) {
	if e.state == nil {
		return
	}
	s := *e.state
	s.openErr = err
	e.state = &s
}

// KnownPlaintext implements Cell.
func (e *Encrypted[T]) KnownPlaintext() ([]byte, bool, error) {
	if e.state == nil || !e.state.hasValue {
		return nil, false, nil
	}
	b, err := encodePlain(*e.state.value)
	return b, err == nil, err
}

// Origin implements Cell.
func (e *Encrypted[T]) Origin() string {
	if e.state == nil {
		return ""
	}
	return e.state.origin()
}

// SetOrigin implements Cell.
func (e *Encrypted[T]) SetOrigin(origin string) {
	if e.state == nil {
		return
	}
	s := *e.state
	s.sealed = &sealedForm{stored: s.stored(), origin: origin}
	e.state = &s
}
