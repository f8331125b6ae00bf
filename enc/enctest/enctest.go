// Package enctest provides an in-memory enc.KeyProvider for unit tests that must not reach KMS.
package enctest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dynoseal/dynoseal/enc"
)

// Provider wraps data keys under in-memory master keys, checking the key ID
// and encryption context on decrypt the way KMS does. Keys are created on
// first use of an ID. Each encrypted data key names the master key that
// sealed it, as a KMS ciphertext blob does, so the provider implements
// enc.KeyRing and enc.ReEncrypter. An ID "alias/..." names its own key
// unless [Provider.SetAlias] points it at another. It also implements
// enc.MacGenerator, for beacons, with HMAC keys that are fixed per name
// (see [Provider.GenerateMac]). It is safe for concurrent use.
type Provider struct {
	mu      sync.Mutex
	masters map[string][]byte
	macKeys map[string][]byte
	aliases map[string]string

	// Fail, when set, is consulted before every call; a non-nil result is
	// returned as the call's error. op is "GenerateDataKey", "Decrypt",
	// "ReEncrypt", "CheckKey" or "GenerateMac".
	Fail func(op string, key enc.KeyRef) error

	Generates  atomic.Int64
	Decrypts   atomic.Int64
	ReEncrypts atomic.Int64
	Macs       atomic.Int64 // GenerateMac calls
}

// New returns an empty provider.
func New() *Provider {
	return &Provider{masters: map[string][]byte{}, macKeys: map[string][]byte{}, aliases: map[string]string{}}
}

var (
	_ enc.KeyProvider  = (*Provider)(nil)
	_ enc.KeyRing      = (*Provider)(nil)
	_ enc.ReEncrypter  = (*Provider)(nil)
	_ enc.KeyChecker   = (*Provider)(nil)
	_ enc.MacGenerator = (*Provider)(nil)
)

// CheckKey fails as Fail says for op "CheckKey"; every other key exists and
// is enabled.
func (p *Provider) CheckKey(_ context.Context, key enc.KeyRef) error {
	return p.fail("CheckKey", key)
}

// SetAlias points alias (an "alias/..." name) at the key target, as KMS
// CreateAlias and UpdateAlias do: data keys made under the alias from now on
// are sealed under target.
func (p *Provider) SetAlias(alias, target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.aliases[alias] = target
}

// SetMaster fixes the 32-byte master key that name (a key ID, or an alias's
// target) stands for, instead of a random one made on first use: values
// sealed when a fixture was recorded then open in every later run. The key
// is in the caller's source, so such values protect nothing.
func (p *Provider) SetMaster(name string, key []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.masters[name] = slices.Clone(key)
}

// resolve returns the master key an ID names now.
func (p *Provider) resolve(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.aliases[id]; ok && strings.HasPrefix(id, "alias/") {
		return t
	}
	return id
}

func (p *Provider) master(name string) (cipher.AEAD, error) {
	p.mu.Lock()
	k, ok := p.masters[name]
	if !ok {
		k = make([]byte, 32)
		_, _ = rand.Read(k)
		p.masters[name] = k
	}
	p.mu.Unlock()
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func contextAAD(master string, key enc.KeyRef) []byte {
	pairs := make([][2]string, 0, len(key.Context))
	for _, k := range slices.Sorted(maps.Keys(key.Context)) {
		pairs = append(pairs, [2]string{k, key.Context[k]})
	}
	b, _ := json.Marshal(struct {
		ID  string
		Ctx [][2]string
	}{master, pairs})
	return b
}

func (p *Provider) fail(op string, key enc.KeyRef) error {
	if p.Fail == nil {
		return nil
	}
	return p.Fail(op, key)
}

// GenerateDataKey implements enc.KeyProvider.
func (p *Provider) GenerateDataKey(_ context.Context, key enc.KeyRef) ([]byte, []byte, error) {
	p.Generates.Add(1)
	if err := p.fail("GenerateDataKey", key); err != nil {
		return nil, nil, err
	}
	plain := make([]byte, 32)
	_, _ = rand.Read(plain)
	blob, err := p.wrap(key, plain)
	if err != nil {
		return nil, nil, err
	}
	return plain, blob, nil
}

// wrap seals a data key under the master key key.KeyID names now. The blob
// is the master key's name (length-prefixed), a nonce and the sealed key.
func (p *Provider) wrap(key enc.KeyRef, plain []byte) ([]byte, error) {
	name := p.resolve(key.KeyID)
	m, err := p.master(name)
	if err != nil {
		return nil, err
	}
	blob := binary.BigEndian.AppendUint16(nil, uint16(len(name)))
	blob = append(blob, name...)
	nonce := make([]byte, m.NonceSize())
	_, _ = rand.Read(nonce)
	blob = append(blob, nonce...)
	return m.Seal(blob, nonce, plain, contextAAD(name, key)), nil
}

// sealedBy returns the name of the master key a blob says sealed it.
func sealedBy(blob []byte) (string, []byte, error) {
	if len(blob) < 2 || len(blob) < 2+int(binary.BigEndian.Uint16(blob)) {
		return "", nil, fmt.Errorf("%w: short blob", enc.ErrInvalidCiphertext)
	}
	n := 2 + int(binary.BigEndian.Uint16(blob))
	return string(blob[2:n]), blob[n:], nil
}

// unwrap opens a blob sealed under the master key name.
func (p *Provider) unwrap(name string, key enc.KeyRef, rest []byte) ([]byte, error) {
	m, err := p.master(name)
	if err != nil {
		return nil, err
	}
	if len(rest) < m.NonceSize() {
		return nil, fmt.Errorf("%w: short blob", enc.ErrInvalidCiphertext)
	}
	plain, err := m.Open(nil, rest[:m.NonceSize()], rest[m.NonceSize():], contextAAD(name, key))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", enc.ErrInvalidCiphertext, err)
	}
	return plain, nil
}

// DecryptDataKey implements enc.KeyProvider. Like KMS Decrypt with a KeyId,
// it refuses a blob sealed under another key than the one key.KeyID names.
func (p *Provider) DecryptDataKey(_ context.Context, key enc.KeyRef, blob []byte) ([]byte, error) {
	p.Decrypts.Add(1)
	if err := p.fail("Decrypt", key); err != nil {
		return nil, err
	}
	name, rest, err := sealedBy(blob)
	if err != nil {
		return nil, err
	}
	if name != p.resolve(key.KeyID) {
		return nil, fmt.Errorf("%w: data key sealed under another key", enc.ErrInvalidCiphertext)
	}
	return p.unwrap(name, key, rest)
}

// origin finds which of key.KeyID and previous names the master key that
// sealed a blob.
func (p *Provider) origin(key enc.KeyRef, previous []string, blob []byte) (string, []byte, enc.KeyOrigin, error) {
	name, rest, err := sealedBy(blob)
	if err != nil {
		return "", nil, enc.KeyOrigin{Index: -1}, err
	}
	for i, id := range append([]string{key.KeyID}, previous...) {
		if p.resolve(id) == name {
			return name, rest, enc.KeyOrigin{Index: i}, nil
		}
	}
	return "", nil, enc.KeyOrigin{Index: -1}, enc.ErrKeyNotAllowed
}

// DecryptDataKeyFrom implements enc.KeyRing.
func (p *Provider) DecryptDataKeyFrom(_ context.Context, key enc.KeyRef, previous []string, blob []byte) ([]byte, enc.KeyOrigin, error) {
	p.Decrypts.Add(1)
	if err := p.fail("Decrypt", key); err != nil {
		return nil, enc.KeyOrigin{Index: -1}, err
	}
	name, rest, from, err := p.origin(key, previous, blob)
	if err != nil {
		return nil, from, err
	}
	plain, err := p.unwrap(name, key, rest)
	return plain, from, err
}

// ReEncryptDataKey implements enc.ReEncrypter.
func (p *Provider) ReEncryptDataKey(_ context.Context, key enc.KeyRef, previous []string, blob []byte) ([]byte, enc.KeyOrigin, error) {
	p.ReEncrypts.Add(1)
	if err := p.fail("ReEncrypt", key); err != nil {
		return nil, enc.KeyOrigin{Index: -1}, err
	}
	name, rest, from, err := p.origin(key, previous, blob)
	if err != nil {
		return nil, from, err
	}
	plain, err := p.unwrap(name, key, rest)
	if err != nil {
		return nil, from, err
	}
	defer clear(plain)
	out, err := p.wrap(key, plain)
	return out, from, err
}

// SetMacKey fixes the HMAC key that name (a key ID, or an alias's target)
// stands for in GenerateMac, instead of the one derived from the name, e.g.
// to compute expected beacons independently of this package.
func (p *Provider) SetMacKey(name string, key []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.macKeys[name] = slices.Clone(key)
}

// macKeyLabel starts the hash that derives a name's HMAC key.
const macKeyLabel = "enctest HMAC key "

// GenerateMac implements enc.MacGenerator: the HMAC-SHA-256 of message under
// the HMAC key that key.KeyID names now (aliases resolve as for data keys):
// the one SetMacKey fixed, else SHA-256("enctest HMAC key " + name). Unlike
// a master key, a name's HMAC key is the same in every Provider and every
// run, so beacons recorded in a fixture are found again. Like every key of
// this provider, one that was never named before is made on first use.
func (p *Provider) GenerateMac(_ context.Context, key enc.KeyRef, message []byte) ([]byte, error) {
	p.Macs.Add(1)
	if err := p.fail("GenerateMac", key); err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, p.macKey(p.resolve(key.KeyID)))
	m.Write(message)
	return m.Sum(nil), nil
}

// macKey returns the HMAC key name stands for.
func (p *Provider) macKey(name string) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k, ok := p.macKeys[name]; ok {
		return k
	}
	k := sha256.Sum256([]byte(macKeyLabel + name))
	return k[:]
}
