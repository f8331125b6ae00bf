package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"

	"github.com/dynoseal/dynoseal/enc"
)

// demoKeys stands in for KMS so the recorded event opens without AWS. Its
// master key is derived from a phrase in this file: anyone can open what
// it seals. Never use it for real data.
type demoKeys struct{}

func (demoKeys) master() cipher.AEAD {
	sum := sha256.Sum256([]byte("dynoseal streamhandler demo master key"))
	b, _ := aes.NewCipher(sum[:])
	g, _ := cipher.NewGCM(b)
	return g
}

// binding ties a wrapped data key to its key ID and context, as KMS does.
func binding(ref enc.KeyRef) []byte {
	b, _ := json.Marshal(ref)
	return b
}

func (k demoKeys) GenerateDataKey(_ context.Context, ref enc.KeyRef) ([]byte, []byte, error) {
	plain := make([]byte, 32)
	_, _ = rand.Read(plain)
	m := k.master()
	nonce := make([]byte, m.NonceSize())
	_, _ = rand.Read(nonce)
	return plain, m.Seal(nonce, nonce, plain, binding(ref)), nil
}

func (k demoKeys) DecryptDataKey(_ context.Context, ref enc.KeyRef, blob []byte) ([]byte, error) {
	m := k.master()
	if len(blob) < m.NonceSize() {
		return nil, fmt.Errorf("%w: short data key", enc.ErrInvalidCiphertext)
	}
	plain, err := m.Open(nil, blob[:m.NonceSize()], blob[m.NonceSize():], binding(ref))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", enc.ErrInvalidCiphertext, err)
	}
	return plain, nil
}
