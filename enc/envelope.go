package enc

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
)

// Prefix marks a stored string as an encrypted value. Strings without it are
// plaintext written before the field was encrypted, and load as such.
const Prefix = "ENC:"

// Envelope versions. Version 1 is the default and is byte-compatible with
// pydynox; version 2 adds GCM additional data binding the value to its
// attribute and item.
const (
	Version1 byte = 1
	Version2 byte = 2
)

const (
	nonceSize   = 12
	tagSize     = 16
	dataKeySize = 32
	headerSize  = 1 + 2
)

// Strict decoding rejects non-zero padding bits, so no two stored strings
// decode to the same envelope and every flipped bit is noticed.
var b64 = base64.StdEncoding.Strict()

// IsEncrypted reports whether a stored string carries the encrypted-value prefix.
func IsEncrypted(s string) bool { return strings.HasPrefix(s, Prefix) }

type envelope struct {
	version      byte
	encryptedKey []byte
	nonce        []byte
	ciphertext   []byte // GCM output: encrypted bytes with the tag appended
}

// appendHeader appends the bytes before the nonce: version, key length and
// encrypted data key. Version 2 authenticates them as additional data.
func (e envelope) appendHeader(dst []byte) []byte {
	dst = append(dst, e.version)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(e.encryptedKey)))
	return append(dst, e.encryptedKey...)
}

func (e envelope) headerLen() int { return headerSize + len(e.encryptedKey) }

func (e envelope) String() string {
	raw := make([]byte, 0, e.headerLen()+len(e.nonce)+len(e.ciphertext))
	raw = e.appendHeader(raw)
	raw = append(raw, e.nonce...)
	raw = append(raw, e.ciphertext...)
	return stored(raw)
}

// stored returns the stored form of an envelope's bytes.
func stored(raw []byte) string {
	out := make([]byte, len(Prefix)+b64.EncodedLen(len(raw)))
	copy(out, Prefix)
	b64.Encode(out[len(Prefix):], raw)
	return string(out)
}

// sealEnvelope encrypts plaintext into a whole stored value. The envelope
// is built in scratch, which it returns for the next value, and encoded
// straight into the string's own buffer: one allocation per value.
func sealEnvelope(aead cipher.AEAD, version byte, encryptedKey, nonce, plaintext, aad, scratch []byte) (string, []byte) {
	env := envelope{version: version, encryptedKey: encryptedKey}
	raw := env.appendHeader(scratch[:0])
	raw = append(raw, nonce...)
	raw = aead.Seal(raw, nonce, plaintext, aad)
	var s strings.Builder
	s.Grow(len(Prefix) + b64.EncodedLen(len(raw)))
	s.WriteString(Prefix)
	var chunk [64]byte // 48 bytes of envelope at a time
	for rest := raw; len(rest) > 0; {
		n := min(len(rest), 48)
		b64.Encode(chunk[:], rest[:n])
		s.Write(chunk[:b64.EncodedLen(n)])
		rest = rest[n:]
	}
	return s.String(), raw
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// parseEnvelope splits a stored string into its parts. The parts alias one
// freshly decoded buffer.
func parseEnvelope(stored string) (envelope, error) {
	return parseEnvelopeInto(stored, nil)
}

// parseEnvelopeInto is parseEnvelope that decodes into arena when it has
// room, so that the values of one call share one buffer.
func parseEnvelopeInto(stored string, arena []byte) (envelope, error) {
	if !IsEncrypted(stored) {
		return envelope{}, malformed("missing %q prefix", Prefix)
	}
	text := stored[len(Prefix):]
	// The decoder skips line breaks; refuse them so that each envelope has
	// exactly one stored form.
	if i := strings.IndexAny(text, "\r\n"); i >= 0 {
		return envelope{}, malformed("line break at byte %d", i+len(Prefix))
	}
	raw, err := decodeInto(text, arena)
	if err != nil {
		return envelope{}, malformed("bad base64 at byte %d", base64ErrOffset(err)+len(Prefix))
	}
	if len(raw) < headerSize {
		return envelope{}, malformed("%d bytes is shorter than the header", len(raw))
	}
	version := raw[0]
	if version != Version1 && version != Version2 {
		return envelope{}, malformed("unsupported version %d", version)
	}
	keyLen := int(binary.BigEndian.Uint16(raw[1:3]))
	if keyLen == 0 {
		return envelope{}, malformed("empty encrypted data key")
	}
	rest := raw[headerSize:]
	if keyLen+nonceSize+tagSize > len(rest) {
		return envelope{}, malformed("data key length %d exceeds the %d bytes that follow", keyLen, len(rest))
	}
	return envelope{
		version:      version,
		encryptedKey: rest[:keyLen:keyLen],
		nonce:        rest[keyLen : keyLen+nonceSize : keyLen+nonceSize],
		ciphertext:   rest[keyLen+nonceSize:],
	}, nil
}

// EnvelopeVersion returns the envelope version of a stored "ENC:..." value
// without opening it, e.g. to count the values a migration to version 2 has
// still to rewrite. It checks only the prefix and the first bytes.
func EnvelopeVersion(stored string) (byte, error) {
	if !IsEncrypted(stored) {
		return 0, malformed("missing %q prefix", Prefix)
	}
	// Four base64 characters carry the first three bytes.
	text := stored[len(Prefix):]
	if len(text) < 4 {
		return 0, malformed("%d characters is shorter than the header", len(text))
	}
	var head [3]byte
	if i := strings.IndexAny(text[:4], "\r\n"); i >= 0 {
		return 0, malformed("line break at byte %d", i+len(Prefix))
	}
	if _, err := b64.Decode(head[:], []byte(text[:4])); err != nil {
		return 0, malformed("bad base64 at byte %d", base64ErrOffset(err)+len(Prefix))
	}
	if v := head[0]; v != Version1 && v != Version2 {
		return 0, malformed("unsupported version %d", v)
	}
	return head[0], nil
}

func base64ErrOffset(err error) int {
	if e, ok := err.(base64.CorruptInputError); ok {
		return int(e)
	}
	return 0
}

func newGCM(dataKey []byte) (cipher.AEAD, error) {
	if len(dataKey) != dataKeySize {
		return nil, fmt.Errorf("data key is %d bytes, want %d", len(dataKey), dataKeySize)
	}
	block, err := aes.NewCipher(dataKey)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// decodeInto decodes base64 text into arena when it is large enough, else
// into a new buffer.
func decodeInto(text string, arena []byte) ([]byte, error) {
	if cap(arena) < b64.DecodedLen(len(text)) {
		return b64.DecodeString(text)
	}
	n, err := b64.Decode(arena[:cap(arena)], []byte(text))
	return arena[:n:n], err
}
