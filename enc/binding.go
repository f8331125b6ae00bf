package enc

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/dynoseal/dynoseal/internal/number"
)

// Binding ties a version-2 value to the place it is stored: the attribute
// that holds it and the primary key of its item. It becomes GCM additional
// data, so the value opens only with the same binding; a ciphertext copied to
// another item or attribute fails with [ErrInvalidCiphertext].
//
// Repositories build bindings themselves. Callers of [Encryptor.SealOne] and
// [Encryptor.OpenOne] must give the same binding on both sides.
type Binding struct {
	// Attribute names the attribute that holds the value: a top-level name,
	// or a document path such as "profile.cards[].number" for nested values.
	Attribute string
	// Key is the item's primary key, one entry per key attribute. Order does
	// not matter: entries are sorted by name before use.
	Key []KeyAttribute
}

// KeyType is the DynamoDB type of a key attribute.
type KeyType byte

// DynamoDB scalar types, the only ones a key can have.
const (
	KeyString KeyType = 'S'
	KeyNumber KeyType = 'N'
	KeyBinary KeyType = 'B'
)

// KeyAttribute is one attribute of a primary key.
type KeyAttribute struct {
	Name string
	Type KeyType
	// Value holds a string's UTF-8 bytes, a number's decimal text (any
	// spelling DynamoDB accepts: "42", "42.0" and "4.2E1" bind alike) or
	// binary data as is.
	Value []byte
}

// StringKey returns a key attribute of type S.
func StringKey(name, value string) KeyAttribute {
	return KeyAttribute{Name: name, Type: KeyString, Value: []byte(value)}
}

// NumberKey returns a key attribute of type N from its decimal text.
func NumberKey(name, value string) KeyAttribute {
	return KeyAttribute{Name: name, Type: KeyNumber, Value: []byte(value)}
}

// BinaryKey returns a key attribute of type B.
func BinaryKey(name string, value []byte) KeyAttribute {
	return KeyAttribute{Name: name, Type: KeyBinary, Value: value}
}

// Canonical returns the bytes a version-2 value authenticates for b, as a
// string: two bindings name the same place exactly when their canonical forms
// are equal, whatever the order of their key attributes or the spelling of
// their numbers.
func (b Binding) Canonical() (string, error) {
	aad, err := b.encode()
	return string(aad), err
}

// encode returns the binding's part of the GCM additional data of a
// version-2 value, which follows the envelope header (version, key length,
// encrypted data key). Every part is length-prefixed so that no two
// different bindings give the same bytes. docs/format.md describes the layout.
func (b Binding) encode() ([]byte, error) {
	if b.Attribute == "" {
		return nil, fmt.Errorf("%w: empty attribute name", ErrBinding)
	}
	if len(b.Key) == 0 {
		return nil, fmt.Errorf("%w: no key attributes", ErrBinding)
	}
	key := slices.Clone(b.Key)
	slices.SortFunc(key, func(x, y KeyAttribute) int { return cmp.Compare(x.Name, y.Name) })
	n := 4 + len(b.Attribute) + 4
	for i, k := range key {
		if k.Name == "" {
			return nil, fmt.Errorf("%w: key attribute with an empty name", ErrBinding)
		}
		if i > 0 && key[i-1].Name == k.Name {
			return nil, fmt.Errorf("%w: key attribute %s given twice", ErrBinding, k.Name)
		}
		switch k.Type {
		case KeyString, KeyBinary:
		case KeyNumber:
			canon, err := number.Canonical(string(k.Value))
			if err != nil {
				return nil, fmt.Errorf("%w: key attribute %s: %w", ErrBinding, k.Name, err)
			}
			key[i].Value = []byte(canon)
		default:
			return nil, fmt.Errorf("%w: key attribute %s has type %q, want S, N or B", ErrBinding, k.Name, string(rune(k.Type)))
		}
		n += 4 + len(k.Name) + 1 + 4 + len(key[i].Value)
	}
	aad := make([]byte, 0, n)
	aad = appendField(aad, []byte(b.Attribute))
	aad = binary.BigEndian.AppendUint32(aad, uint32(len(key)))
	for _, k := range key {
		aad = appendField(aad, []byte(k.Name))
		aad = append(aad, byte(k.Type))
		aad = appendField(aad, k.Value)
	}
	return aad, nil
}

func appendField(dst, field []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(field)))
	return append(dst, field...)
}

// BoundTo says what the stored value is tied to when it is read from the
// place that b and itemContext describe: for a version-2 value its binding,
// and for any value the context taken from its item. It is "" for a value
// tied to nothing, which opens wherever it is copied. A value that is not
// tied to "" opens only where BoundTo gives the same string, so a repository
// compares the two to tell whether an unchanged value may be written back as
// stored or must be sealed again for its new place.
func BoundTo(stored string, b Binding, itemContext map[string]string) string {
	version, err := EnvelopeVersion(stored)
	bound := err == nil && version == Version2
	if !bound && len(itemContext) == 0 {
		return ""
	}
	var s strings.Builder
	s.WriteString("1")
	if bound {
		canon, err := b.Canonical()
		if err != nil {
			return ""
		}
		s.Reset()
		s.WriteString("2\x00")
		s.WriteString(canon)
	}
	// Length-prefixed, so that no two contexts give the same string.
	for _, k := range slices.Sorted(maps.Keys(itemContext)) {
		for _, part := range []string{k, itemContext[k]} {
			s.WriteString("\x00")
			s.WriteString(strconv.Itoa(len(part)))
			s.WriteString(":")
			s.WriteString(part)
		}
	}
	return s.String()
}
