// Package enctest provides an in-memory enc.KeyProvider for unit tests that must not reach KMS.
package enctest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/dynoseal/dynoseal/enc"
)

// Provider wraps data keys under in-memory master keys, checking the key ID
// and encryption context on decrypt the way KMS does. Keys are created on
// first use of an ID. It is safe for concurrent use.
type Provider struct {
	mu      sync.Mutex
	masters map[string][]byte

	// Fail, when set, is consulted before every call; a non-nil result is
	// returned as the call's error.
	Fail func(op string, key enc.KeyRef) error

	Generates atomic.Int64
	Decrypts  atomic.Int64
}

// New returns an empty provider.
func New() *Provider { return &Provider{masters: map[string][]byte{}} }

var _ enc.KeyProvider = (*Provider)(nil)

func (p *Provider) master(id string) (cipher.AEAD, error) {
	p.mu.Lock()
	k, ok := p.masters[id]
	if !ok {
		k = make([]byte, 32)
		_, _ = rand.Read(k)
		p.masters[id] = k
	}
	p.mu.Unlock()
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func contextAAD(key enc.KeyRef) []byte {
	pairs := make([][2]string, 0, len(key.Context))
	for _, k := range slices.Sorted(maps.Keys(key.Context)) {
		pairs = append(pairs, [2]string{k, key.Context[k]})
	}
	b, _ := json.Marshal(struct {
		ID  string
		Ctx [][2]string
	}{key.KeyID, pairs})
	return b
}

// GenerateDataKey implements enc.KeyProvider.
func (p *Provider) GenerateDataKey(_ context.Context, key enc.KeyRef) ([]byte, []byte, error) {
	p.Generates.Add(1)
	if p.Fail != nil {
		if err := p.Fail("GenerateDataKey", key); err != nil {
			return nil, nil, err
		}
	}
	m, err := p.master(key.KeyID)
	if err != nil {
		return nil, nil, err
	}
	plain := make([]byte, 32)
	_, _ = rand.Read(plain)
	nonce := make([]byte, m.NonceSize())
	_, _ = rand.Read(nonce)
	blob := append(nonce, m.Seal(nil, nonce, plain, contextAAD(key))...)
	return plain, blob, nil
}

// DecryptDataKey implements enc.KeyProvider.
func (p *Provider) DecryptDataKey(_ context.Context, key enc.KeyRef, blob []byte) ([]byte, error) {
	p.Decrypts.Add(1)
	if p.Fail != nil {
		if err := p.Fail("Decrypt", key); err != nil {
			return nil, err
		}
	}
	m, err := p.master(key.KeyID)
	if err != nil {
		return nil, err
	}
	if len(blob) < m.NonceSize() {
		return nil, fmt.Errorf("%w: short blob", enc.ErrInvalidCiphertext)
	}
	plain, err := m.Open(nil, blob[:m.NonceSize()], blob[m.NonceSize():], contextAAD(key))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", enc.ErrInvalidCiphertext, err)
	}
	return plain, nil
}
