// Package field provides Encrypted, a struct field that is sealed with KMS before it reaches DynamoDB.
package field

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
)

// ErrSealed is returned by Value for a value that was read from DynamoDB but
// not opened, e.g. one unmarshalled with attributevalue directly instead of
// through a repository.
var ErrSealed = errors.New("encrypted value is sealed; load it through a repository to open it")

// Redacted is what fmt, encoding/json and log/slog show instead of an
// encrypted field's value.
const Redacted = "[encrypted]"

// Encrypted holds a value that is stored in DynamoDB only in sealed form.
//
// Use it as a struct field with an `enc:"name"` tag naming a registered
// enc.Spec. The zero value is absent and stored as NULL (or left out with
// `dynamodbav:",omitempty"`). Copies are independent: Set on one never changes
// another.
//
// string and []byte are sealed as their bytes; any other T is sealed as its
// encoding/json encoding, which round-trips every value that JSON can carry
// exactly (see docs/field-encryption.md).
//
// Encrypted never prints, logs or JSON-encodes its plaintext.
type Encrypted[T any] struct {
	// state is shared by copies but never changed after it is made; every
	// change installs a new one. A pointer also keeps the plaintext out of
	// fmt output of unexported fields, where methods are not consulted.
	state *state[T]
}

type state[T any] struct {
	value    T
	hasValue bool   // value holds the plaintext
	pending  bool   // value is new, changed or legacy plaintext: it must be sealed before a write
	stored   string // the sealed form, as loaded or as sealed for a write
	openErr  error  // why a loaded, sealed value has no plaintext
}

// NewEncrypted returns an Encrypted holding v, to be sealed on the next write.
func NewEncrypted[T any](v T) Encrypted[T] {
	return Encrypted[T]{state: &state[T]{value: v, hasValue: true, pending: true}}
}

// Set replaces the value; it will be sealed on the next write.
func (e *Encrypted[T]) Set(v T) { *e = NewEncrypted(v) }

// Value returns the plaintext. An absent value gives T's zero value and no
// error. A value loaded in WriteOnly mode fails with enc.ErrWriteOnly.
func (e Encrypted[T]) Value() (T, error) {
	var zero T
	s := e.state
	switch {
	case s == nil:
		return zero, nil
	case s.hasValue:
		return s.value, nil
	case s.openErr != nil:
		return zero, s.openErr
	default:
		return zero, ErrSealed
	}
}

// IsSealed reports whether the value is held in sealed form, ready to be
// written as it is.
func (e Encrypted[T]) IsSealed() bool {
	return e.state != nil && e.state.stored != "" && !e.state.pending
}

// IsPresent reports whether the field has a value (plaintext or sealed).
func (e Encrypted[T]) IsPresent() bool { return e.state != nil }

// Ciphertext returns the sealed form ("ENC:..."), or "" if the value is
// absent or not sealed yet.
func (e Encrypted[T]) Ciphertext() string {
	if !e.IsSealed() {
		return ""
	}
	return e.state.stored
}

// MarshalDynamoDBAttributeValue writes the sealed form. It never calls KMS: a
// new or changed value that has not been sealed fails with enc.ErrNotSealed,
// so plaintext cannot be written by accident.
func (e Encrypted[T]) MarshalDynamoDBAttributeValue() (types.AttributeValue, error) {
	s := e.state
	switch {
	case s == nil:
		return &types.AttributeValueMemberNULL{Value: true}, nil
	case s.pending || s.stored == "":
		return nil, enc.ErrNotSealed
	default:
		return &types.AttributeValueMemberS{Value: s.stored}, nil
	}
}

// UnmarshalDynamoDBAttributeValue keeps a sealed value as stored, to be opened
// by a repository. A value without the enc.Prefix is plaintext written before
// the field was encrypted: it loads as plaintext and is sealed on the next write.
func (e *Encrypted[T]) UnmarshalDynamoDBAttributeValue(av types.AttributeValue) error {
	switch v := av.(type) {
	case *types.AttributeValueMemberNULL:
		*e = Encrypted[T]{}
		return nil
	case *types.AttributeValueMemberS:
		if enc.IsEncrypted(v.Value) {
			*e = Encrypted[T]{state: &state[T]{stored: v.Value}}
			return nil
		}
		return e.loadLegacy([]byte(v.Value), true)
	case *types.AttributeValueMemberN:
		return e.loadLegacy([]byte(v.Value), false)
	case *types.AttributeValueMemberB:
		return e.loadLegacy(v.Value, false)
	case nil:
		return fmt.Errorf("%w: nil attribute value", enc.ErrMalformed)
	default:
		return fmt.Errorf("%w: an encrypted field cannot be stored as %T", enc.ErrMalformed, av)
	}
}

func (e *Encrypted[T]) loadLegacy(raw []byte, text bool) error {
	v, err := decodeLegacy[T](raw, text)
	if err != nil {
		return err
	}
	*e = Encrypted[T]{state: &state[T]{value: v, hasValue: true, pending: true}}
	return nil
}

// String returns [Redacted].
func (e Encrypted[T]) String() string { return Redacted }

// GoString returns [Redacted], for %#v.
func (e Encrypted[T]) GoString() string { return Redacted }

// Format writes [Redacted] for every verb.
func (e Encrypted[T]) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// LogValue returns [Redacted] for log/slog.
func (e Encrypted[T]) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON writes [Redacted] as a JSON string.
func (e Encrypted[T]) MarshalJSON() ([]byte, error) { return json.Marshal(Redacted) }

// UnmarshalJSON fails: JSON output is redacted, so reading it back would
// silently replace the value. Decode into a T and call Set instead.
func (e *Encrypted[T]) UnmarshalJSON([]byte) error {
	return errors.New("field.Encrypted cannot be decoded from JSON: decode into the plain type and call Set")
}
