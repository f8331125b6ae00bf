package enc

import (
	"errors"
	"strings"
)

// Sentinel errors. Every error returned by this package and by the providers
// and repositories built on it matches one of these with errors.Is when the
// cause is known.
var (
	ErrKeyNotFound       = errors.New("KMS key not found")
	ErrAccessDenied      = errors.New("access denied")
	ErrKeyDisabled       = errors.New("KMS key disabled or pending deletion")
	ErrInvalidCiphertext = errors.New("invalid ciphertext or encryption context")
	ErrThrottled         = errors.New("KMS request throttled")
	ErrMalformed         = errors.New("malformed encrypted value")
	ErrReadOnly          = errors.New("cannot encrypt in ReadOnly mode")
	ErrWriteOnly         = errors.New("cannot decrypt in WriteOnly mode")
	ErrNotSealed         = errors.New("encrypted value is not sealed; save it through a repository or seal it with an Encryptor")
	ErrNoSpec            = errors.New("no encryption spec registered")
	// ErrBinding: a value bound to its item was sealed or opened without a
	// valid Binding, or was moved to another item or context where it cannot
	// be sealed again because its plaintext is not known. It is a usage
	// error, not a sign of tampering.
	ErrBinding = errors.New("encrypted value not validly bound to its attribute, item key or item context")
	// ErrItemContext: the encryption context a spec takes from the item
	// (Spec.ContextFrom) could not be had, e.g. the attribute is missing.
	ErrItemContext = errors.New("cannot take encryption context from the item")
	// ErrUnsealed: a stored value is not sealed (plaintext, another type,
	// NULL) under a spec with RequireSealed.
	ErrUnsealed = errors.New("stored value is not sealed, and the spec requires it")
	// ErrVersionTooOld: a stored envelope is older than the spec's MinVersion.
	ErrVersionTooOld = errors.New("envelope version below the spec's MinVersion")
	// ErrKeyNotAllowed: a stored value was sealed under a KMS key that is
	// neither the spec's KeyID nor one of its PreviousKeyIDs.
	ErrKeyNotAllowed = errors.New("value sealed under a key that is neither the spec's current nor a previous key")
)

// Op names the step that failed in an [Error].
type Op string

// Operations reported in [Error].Op.
const (
	OpEncrypt Op = "encrypt"
	OpDecrypt Op = "decrypt"
	OpCheck   Op = "check"
	// OpRewrap: a stored value could not be brought to its spec's current
	// key, version or context by [Encryptor.Rewrap].
	OpRewrap Op = "rewrap"
)

// Error describes a failure to seal or open one value. It never holds
// plaintext or key material. Err wraps a sentinel of this package and, where
// the failure came from KMS, the SDK's own error.
type Error struct {
	Op        Op
	Attribute string // the DynamoDB attribute, when known
	KeyID     string // the KMS key ID, ARN or alias of the spec
	// Index is, for an error of Seal, the position of the failed request
	// among the call's requests (for a data key that could not be had, the
	// first of the requests that share it), so a caller can name the item
	// it belongs to; 0 otherwise.
	Index int
	Err   error
}

// indexed records in err, when it is an *Error, the position of its
// request in the call.
func indexed(err error, i int) error {
	var e *Error
	if !errors.As(err, &e) || err != error(e) {
		return err
	}
	c := *e
	c.Index = i
	return &c
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("dynoseal: ")
	b.WriteString(string(e.Op))
	if e.Attribute != "" {
		b.WriteString(" attribute ")
		b.WriteString(e.Attribute)
	}
	if e.KeyID != "" {
		b.WriteString(" with key ")
		b.WriteString(e.KeyID)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// AsError reports whether err is or wraps an [*Error] and returns it.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
