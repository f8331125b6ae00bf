// Package pagetoken writes and checks the continuation tokens of paged reads: the key to continue after, bound to the read it continues.
package pagetoken

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/internal/attrkind"
)

// ErrInvalid is the error of every token Decode refuses.
var ErrInvalid = errors.New("dynoseal: invalid page token")

// A page token is URL-safe base64 (no padding) of
//
//	version (1 byte) | check (8 bytes) | the key DynamoDB continues after
//
// The check is a hash of what the token may continue (the query's identity,
// see NewScope) and of the encoded key. A token handed to a client comes back
// through untrusted hands: continuing another query from it, or from a key
// changed on the way, would silently skip or repeat items. The check catches
// both, but it is not a signature: it has no secret, so whoever can write the
// bytes can make a token for any key of the same query. It guards against
// accidents and mix-ups, not against a forger; the most a forged token does
// is start the same query (or scan segment) at a key of the forger's choice.
//
// The key is encoded in a small binary form of its attributes, each S, N or
// B, that keeps numbers exactly as DynamoDB wrote them.
//
// Tokens are not encrypted: they reveal the key values of the last item read,
// as DynamoDB's LastEvaluatedKey does.
const (
	// Version 1 checked the query only, not the key; version 2 encoded
	// every attribute type.
	tokenVersion = 3
	checkSize    = 8
	// Keys are at most a few KB (2 KB hash, 1 KB range, the same again for an
	// index); anything much longer was not made here.
	maxTokenLen = 32 << 10
)

// Scope identifies one query or scan: a hash of its parts.
type Scope [sha256.Size]byte

// NewScope hashes the parts that identify one query or scan.
func NewScope(parts ...[]byte) Scope {
	h := sha256.New()
	for _, p := range parts {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write(p)
	}
	var b Scope
	copy(b[:], h.Sum(nil))
	return b
}

// check is the check of a token that continues query b after the key
// encoded as key.
func check(b Scope, key []byte) [checkSize]byte {
	h := sha256.New()
	h.Write([]byte{tokenVersion})
	h.Write(b[:])
	h.Write(key)
	var c [checkSize]byte
	copy(c[:], h.Sum(nil))
	return c
}

// Encode returns the token that continues the read of scope after key.
func Encode(scope Scope, key map[string]types.AttributeValue) (string, error) {
	encoded, err := AppendKey(nil, key)
	if err != nil {
		return "", err
	}
	c := check(scope, encoded)
	buf := make([]byte, 0, 1+checkSize+len(encoded))
	buf = append(append(append(buf, tokenVersion), c[:]...), encoded...)
	return base64.RawURLEncoding.EncodeToString(buf), nil
}

// Decode returns the key a token made by Encode for want continues after.
func Decode(token string, want Scope) (map[string]types.AttributeValue, error) {
	if len(token) > maxTokenLen {
		return nil, fmt.Errorf("%w: %d characters is too long", ErrInvalid, len(token))
	}
	// Strict, and without the line breaks the decoder would skip, so that
	// one key has exactly one token.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || strings.ContainsAny(token, "\r\n") {
		return nil, fmt.Errorf("%w: not URL-safe base64", ErrInvalid)
	}
	if len(raw) < 1+checkSize || raw[0] != tokenVersion {
		return nil, fmt.Errorf("%w: unknown format", ErrInvalid)
	}
	encoded := raw[1+checkSize:]
	if c := check(want, encoded); !bytes.Equal(raw[1:1+checkSize], c[:]) {
		return nil, fmt.Errorf("%w: it belongs to another query or scan, or was damaged", ErrInvalid)
	}
	d := tokenDecoder{b: encoded}
	key, err := d.readMap()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrInvalid, len(d.b))
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: empty key", ErrInvalid)
	}
	return key, nil
}

// Type tags of encoded attribute values. A key holds only S, N and B.
const (
	tagS byte = iota + 1
	tagN
	tagB
)

func appendBytes(buf, b []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(b)))
	return append(buf, b...)
}

// AppendKey appends a key (or any map of S, N and B attributes), names in
// sorted order, so that equal maps encode equally.
func AppendKey(buf []byte, m map[string]types.AttributeValue) ([]byte, error) {
	buf = binary.AppendUvarint(buf, uint64(len(m)))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		buf = appendBytes(buf, []byte(name))
		switch v := m[name].(type) {
		case *types.AttributeValueMemberS:
			buf = appendBytes(append(buf, tagS), []byte(v.Value))
		case *types.AttributeValueMemberN:
			buf = appendBytes(append(buf, tagN), []byte(v.Value))
		case *types.AttributeValueMemberB:
			buf = appendBytes(append(buf, tagB), v.Value)
		default:
			return nil, fmt.Errorf("attribute %q is %s; a key holds only S, N and B", name, attrkind.Of(v))
		}
	}
	return buf, nil
}

type tokenDecoder struct{ b []byte }

var errTruncated = errors.New("truncated")

// readCount reads a length or element count. Every element takes at least
// one byte, so a count beyond the bytes left is damage, not a reason to
// allocate.
func (d *tokenDecoder) readCount() (int, error) {
	n, size := binary.Uvarint(d.b)
	if size <= 0 {
		return 0, errTruncated
	}
	d.b = d.b[size:]
	if n > uint64(len(d.b)) {
		return 0, errTruncated
	}
	return int(n), nil
}

func (d *tokenDecoder) readBytes() ([]byte, error) {
	n, err := d.readCount()
	if err != nil {
		return nil, err
	}
	b := bytes.Clone(d.b[:n])
	d.b = d.b[n:]
	return b, nil
}

func (d *tokenDecoder) readMap() (map[string]types.AttributeValue, error) {
	n, err := d.readCount()
	if err != nil {
		return nil, err
	}
	m := make(map[string]types.AttributeValue, n)
	prev := ""
	for i := range n {
		name, err := d.readBytes()
		if err != nil {
			return nil, err
		}
		// The encoder sorts names; anything else was changed on the way.
		if i > 0 && string(name) <= prev {
			return nil, errors.New("attribute names out of order")
		}
		prev = string(name)
		if m[prev], err = d.readValue(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (d *tokenDecoder) readValue() (types.AttributeValue, error) {
	if len(d.b) == 0 {
		return nil, errTruncated
	}
	tag := d.b[0]
	d.b = d.b[1:]
	b, err := d.readBytes()
	if err != nil {
		return nil, err
	}
	switch tag {
	case tagS:
		return &types.AttributeValueMemberS{Value: string(b)}, nil
	case tagN:
		return &types.AttributeValueMemberN{Value: string(b)}, nil
	case tagB:
		return &types.AttributeValueMemberB{Value: b}, nil
	}
	return nil, fmt.Errorf("unknown type tag %d", tag)
}
