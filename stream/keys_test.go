package stream_test

import (
	"crypto/sha256"

	"github.com/dynoseal/dynoseal/enc/enctest"
)

// fixtureKeys is an in-memory KMS whose master key for the fixtures' spec
// is fixed, so the values sealed when testdata was recorded still open in
// every later run. For tests only: the key is in the source.
func fixtureKeys() *enctest.Provider {
	p := enctest.New()
	key := sha256.Sum256([]byte("dynoseal stream test fixture master key"))
	p.SetMaster("alias/stream-fixture", key[:])
	return p
}
