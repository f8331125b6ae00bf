package stream_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/dynoseal/dynoseal/enc"
)

// fixedKeys is an enc.KeyProvider like enctest's, except that its master
// key is fixed, so the values sealed when a fixture was recorded still open
// in every later run. For tests only: the key is in the source.
type fixedKeys struct {
	decrypts atomic.Int64
}

var _ enc.KeyProvider = (*fixedKeys)(nil)

func (k *fixedKeys) master() cipher.AEAD {
	sum := sha256.Sum256([]byte("dynoseal stream test fixture master key"))
	b, _ := aes.NewCipher(sum[:])
	g, _ := cipher.NewGCM(b)
	return g
}

// bindingOf binds a wrapped data key to its KMS key and context, as KMS does.
func bindingOf(ref enc.KeyRef) []byte {
	b, _ := json.Marshal(ref) // map keys are sorted
	return b
}

func (k *fixedKeys) GenerateDataKey(_ context.Context, ref enc.KeyRef) ([]byte, []byte, error) {
	plain := make([]byte, 32)
	_, _ = rand.Read(plain)
	m := k.master()
	nonce := make([]byte, m.NonceSize())
	_, _ = rand.Read(nonce)
	return plain, m.Seal(nonce, nonce, plain, bindingOf(ref)), nil
}

func (k *fixedKeys) DecryptDataKey(_ context.Context, ref enc.KeyRef, blob []byte) ([]byte, error) {
	k.decrypts.Add(1)
	m := k.master()
	if len(blob) < m.NonceSize() {
		return nil, fmt.Errorf("%w: short data key", enc.ErrInvalidCiphertext)
	}
	plain, err := m.Open(nil, blob[:m.NonceSize()], blob[m.NonceSize():], bindingOf(ref))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", enc.ErrInvalidCiphertext, err)
	}
	return plain, nil
}
