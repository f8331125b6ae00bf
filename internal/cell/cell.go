// Package cell is the seam between field.Encrypted and the repositories that seal and open it.
package cell

import (
	"reflect"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Cell is one encrypted value, as a repository sees it: *field.Encrypted[T]
// for every T. Its methods are for the repository's copy of an item, never
// for the caller's.
type Cell interface {
	// Pending returns the bytes to seal when the value is new, changed or
	// legacy plaintext; ok is false when there is nothing to seal.
	Pending() (plaintext []byte, ok bool, err error)
	// Known returns the plaintext bytes when the value holds them, so that a
	// value tied to another item can be sealed again for this one.
	Known() (plaintext []byte, ok bool, err error)
	// Stored returns the sealed form as loaded, while it still has to be
	// opened.
	Stored() (stored string, ok bool)
	// Sealed returns the sealed form the value holds unchanged, loaded or
	// not yet opened; "" when it is new or changed.
	Sealed() string
	// LoadError is why the stored attribute could not be loaded (a type
	// that cannot hold the value, nesting beyond DynamoDB's limits).
	LoadError() error
	// Reserve makes the value marshal as av, which the repository fills
	// with the sealed form once it has sealed it.
	Reserve(av *types.AttributeValueMemberS)
	// Opened records the plaintext of the stored value.
	Opened(plaintext []byte) error
	// OpenFailed makes Value fail with err; the value stays sealed. A
	// plaintext loaded (legacy) is dropped and cannot be written back.
	OpenFailed(err error)
	// Origin is what SetOrigin recorded: what the loaded sealed value is
	// tied to (see enc.BoundTo), "" for nothing.
	Origin() string
	SetOrigin(origin string)
	// Beacon is what SetBeacon recorded: the digest of the beacon stored
	// with the loaded sealed value ("" when the item had none), for writing
	// the value back with its beacon when its plaintext is not known
	// (WriteOnly). recorded is false when nothing was recorded.
	Beacon() (digest string, recorded bool)
	SetBeacon(digest string)
}

// Kind is what the field package tells about its Encrypted types.
type Kind struct {
	// Of returns the cell of p, a pointer to an Encrypted (or to a struct
	// that embeds one: callers ask only of types Is accepts).
	Of func(p any) Cell
	// Is reports whether t is an Encrypted[T] type.
	Is func(t reflect.Type) bool
	// Check reports whether values of t, an Encrypted[T] type, can be sealed.
	Check func(t reflect.Type) error
}

var kind Kind

// Register is called once, by the field package.
func Register(k Kind) { kind = k }

// Of returns the cell at p; see Kind.Of.
func Of(p any) Cell { return kind.Of(p) }

// Is reports whether t is an Encrypted[T] type.
func Is(t reflect.Type) bool { return kind.Is != nil && kind.Is(t) }

// Check reports whether values of t, an Encrypted[T] type, can be sealed.
func Check(t reflect.Type) error { return kind.Check(t) }
