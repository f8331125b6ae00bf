// Package field provides Encrypted, a struct field that is sealed with KMS before it reaches DynamoDB.
package field

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"

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
// A T whose underlying type is string or []byte is sealed as its bytes; any
// other T as its encoding/json encoding (numbers are decoded with UseNumber,
// so an interface keeps every digit). Values JSON cannot give back exactly
// (NaN and infinite floats, strings that are not valid UTF-8, a T holding
// another Encrypted) fail to seal with a clear error instead of losing data.
// "Types" in docs/field-encryption.md has the details for each kind.
//
// Encrypted never prints, logs or JSON-encodes its plaintext.
type Encrypted[T any] struct {
	// state is shared by copies but never changed after it is made; every
	// change installs a new one.
	state *state[T]
}

// state keeps the plaintext, the sealed form and where that belongs two
// pointers away from an Encrypted. fmt cannot call String or Format on an
// unexported field; it prints a pointer there as an address, except that a
// verb that does not fit a pointer (%s, %q) makes it print the pointed-to
// struct, one level deep, in its error text. One level deep, value and
// sealed are still only pointers, printed as addresses.
type state[T any] struct {
	value    *T
	hasValue bool // value holds the plaintext
	pending  bool // value is new, changed or legacy plaintext: it must be sealed before a write
	sealed   *sealedForm
	openErr  error // why a loaded, sealed value has no plaintext
	loadErr  error // why the stored attribute could not be loaded at all
	// reserved is what a repository's copy marshals as while its value is
	// being sealed; the repository fills it in (see internal/cell).
	reserved *types.AttributeValueMemberS
}

type sealedForm struct {
	stored string // the sealed form, as loaded or as sealed for a write
	origin string // where the sealed value belongs, when bound to its item (see Cell.Origin)
	// beacon is the digest of the beacon loaded with the value, when a
	// repository recorded it (see Cell.Beacon).
	beacon    string
	hasBeacon bool
}

func (s *state[T]) stored() string {
	if s.sealed == nil {
		return ""
	}
	return s.sealed.stored
}

func (s *state[T]) origin() string {
	if s.sealed == nil {
		return ""
	}
	return s.sealed.origin
}

// NewEncrypted returns an Encrypted holding v, to be sealed on the next write.
func NewEncrypted[T any](v T) Encrypted[T] {
	return Encrypted[T]{state: &state[T]{value: &v, hasValue: true, pending: true}}
}

// Set replaces the value; it will be sealed on the next write.
func (e *Encrypted[T]) Set(v T) { *e = NewEncrypted(v) }

// Value returns the plaintext. An absent value gives T's zero value and no
// error. A value loaded in WriteOnly mode fails with enc.ErrWriteOnly, and
// one that no repository opened with ErrSealed. The value is returned as
// held: change a slice, map or pointer T with Set, not in place, or the
// change is neither noticed nor sealed.
func (e Encrypted[T]) Value() (T, error) {
	var zero T
	s := e.state
	switch {
	case s == nil:
		return zero, nil
	case s.hasValue:
		return *s.value, nil
	case s.loadErr != nil:
		return zero, s.loadErr
	case s.openErr != nil:
		return zero, s.openErr
	default:
		return zero, ErrSealed
	}
}

// IsSealed reports whether the value is held in sealed form, ready to be
// written as it is.
func (e Encrypted[T]) IsSealed() bool {
	return e.state != nil && e.state.stored() != "" && !e.state.pending
}

// IsPresent reports whether the field has a value (plaintext or sealed).
func (e Encrypted[T]) IsPresent() bool { return e.state != nil }

// Ciphertext returns the sealed form ("ENC:..."), or "" if the value is
// absent or not sealed yet.
func (e Encrypted[T]) Ciphertext() string {
	if !e.IsSealed() {
		return ""
	}
	return e.state.stored()
}

// MarshalDynamoDBAttributeValue writes the sealed form, or NULL for an absent
// value. It never calls KMS: a new or changed value that has not been sealed
// fails with an error wrapping enc.ErrNotSealed, so plaintext cannot be
// written by accident. A repository seals every Encrypted its item type
// declares before it marshals; one it cannot see (held in an interface field,
// or marshalled with attributevalue directly) ends here.
func (e Encrypted[T]) MarshalDynamoDBAttributeValue() (types.AttributeValue, error) {
	s := e.state
	switch {
	case s == nil:
		return &types.AttributeValueMemberNULL{Value: true}, nil
	case s.reserved != nil:
		return s.reserved, nil
	case s.loadErr != nil:
		return nil, fmt.Errorf("field.Encrypted[%s]: the stored value could not be loaded, so it cannot be written back: %w", plainTypeName[T](), s.loadErr)
	case s.pending || s.stored() == "":
		return nil, fmt.Errorf("field.Encrypted[%s] holds a value that was never sealed (an Encrypted in an interface field, or marshalled outside a repository, is not sealed): %w", plainTypeName[T](), enc.ErrNotSealed)
	default:
		return &types.AttributeValueMemberS{Value: s.stored()}, nil
	}
}

// UnmarshalDynamoDBAttributeValue keeps a sealed value as stored, to be opened
// by a repository. NULL (or a nil attribute) loads as absent. Any other value
// without the enc.Prefix is plaintext written before the field was encrypted
// (see "Types" in docs/field-encryption.md for how each T reads it): it loads
// as plaintext and is sealed on the next write.
//
// A stored value that cannot load as T (a type that does not fit, nesting
// beyond DynamoDB's limits) does not fail the item: Value returns the reason,
// wrapping enc.ErrMalformed, and a repository reports it with the item's key
// and the attribute's path. Errors never quote the value.
func (e *Encrypted[T]) UnmarshalDynamoDBAttributeValue(av types.AttributeValue) error {
	if err := checkAttributeValue(av, 0); err != nil {
		*e = loadFailed[T](fmt.Errorf("field.Encrypted[%s]: %w", plainTypeName[T](), err))
		return nil
	}
	switch v := av.(type) {
	case nil, *types.AttributeValueMemberNULL:
		*e = Encrypted[T]{}
		return nil
	case *types.AttributeValueMemberS:
		if enc.IsEncrypted(v.Value) {
			// The state and its sealed form in one allocation.
			l := &struct {
				s state[T]
				f sealedForm
			}{f: sealedForm{stored: v.Value}}
			l.s.sealed = &l.f
			*e = Encrypted[T]{state: &l.s}
			return nil
		}
	}
	plain, err := decodeLegacy[T](av)
	if err != nil {
		*e = loadFailed[T](fmt.Errorf("field.Encrypted[%s]: %w", plainTypeName[T](), err))
		return nil
	}
	*e = Encrypted[T]{state: &state[T]{value: &plain, hasValue: true, pending: true}}
	return nil
}

// maxNesting is DynamoDB's limit on nested lists and maps.
const maxNesting = 32

// checkAttributeValue rejects what DynamoDB never returns but a caller's own
// value could hold: typed nil members, unknown member types and nesting
// beyond DynamoDB's limit. attributevalue would panic or recurse on them.
func checkAttributeValue(av types.AttributeValue, depth int) error {
	if depth > maxNesting {
		return fmt.Errorf("%w: attribute nested deeper than %d levels", enc.ErrMalformed, maxNesting)
	}
	switch v := av.(type) {
	case nil:
		return nil
	case *types.AttributeValueMemberS, *types.AttributeValueMemberN, *types.AttributeValueMemberB,
		*types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL, *types.AttributeValueMemberSS,
		*types.AttributeValueMemberNS, *types.AttributeValueMemberBS:
		if reflect.ValueOf(v).IsNil() {
			return fmt.Errorf("%w: nil %T", enc.ErrMalformed, v)
		}
		return nil
	case *types.AttributeValueMemberL:
		if v == nil {
			return fmt.Errorf("%w: nil %T", enc.ErrMalformed, v)
		}
		for _, item := range v.Value {
			if err := checkAttributeValue(item, depth+1); err != nil {
				return err
			}
		}
		return nil
	case *types.AttributeValueMemberM:
		if v == nil {
			return fmt.Errorf("%w: nil %T", enc.ErrMalformed, v)
		}
		for _, item := range v.Value {
			if err := checkAttributeValue(item, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%w: unsupported attribute value type %T", enc.ErrMalformed, av)
}

func plainTypeName[T any]() string { return reflect.TypeFor[T]().String() }

// encryptedField marks Encrypted types, so an Encrypted inside the T of
// another is refused instead of being sealed as its redacted JSON form.
func (Encrypted[T]) encryptedField() {}

func (Encrypted[T]) plainType() reflect.Type { return reflect.TypeFor[T]() }

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
