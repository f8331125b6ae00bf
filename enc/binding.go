package enc

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
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
			canon, err := canonicalNumber(string(k.Value))
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

// canonicalNumber rewrites a decimal number so that every spelling of one
// value gives the same text: "-"? digits "E" exponent, where the value is
// 0.digits × 10^exponent, digits has no leading or trailing zeros, and zero
// is "0". So "42", "42.0", "042" and "4.2e1" all become "42E2".
func canonicalNumber(s string) (string, error) {
	bad := func() (string, error) { return "", fmt.Errorf("%q is not a decimal number", s) }
	text := s
	neg := false
	switch {
	case strings.HasPrefix(text, "-"):
		neg, text = true, text[1:]
	case strings.HasPrefix(text, "+"):
		text = text[1:]
	}
	mant, expText, hasExp := strings.Cut(strings.ToUpper(text), "E")
	exp := 0
	if hasExp {
		e, err := strconv.Atoi(expText)
		if err != nil {
			return bad()
		}
		// DynamoDB numbers stay within 10^±130; anything far beyond is an error
		// rather than an exponent that could overflow below.
		if e > 1_000_000 || e < -1_000_000 {
			return bad()
		}
		exp = e
	}
	whole, frac, _ := strings.Cut(mant, ".")
	if whole == "" && frac == "" {
		return bad()
	}
	digits := whole + frac
	for _, c := range []byte(digits) {
		if c < '0' || c > '9' {
			return bad()
		}
	}
	exp += len(whole)
	trimmed := strings.TrimLeft(digits, "0")
	exp -= len(digits) - len(trimmed)
	trimmed = strings.TrimRight(trimmed, "0")
	if trimmed == "" {
		return "0", nil
	}
	var b bytes.Buffer
	if neg {
		b.WriteByte('-')
	}
	b.WriteString(trimmed)
	b.WriteByte('E')
	b.WriteString(strconv.Itoa(exp))
	return b.String(), nil
}
