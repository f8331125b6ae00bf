package main

import (
	"crypto/sha256"

	"github.com/dynoseal/dynoseal/enc/enctest"
)

// demoKeys stands in for KMS so the recorded event opens without AWS: an
// in-memory provider whose master key is derived from a phrase in this
// file, so anyone can open what it seals. Never use it for real data.
func demoKeys() *enctest.Provider {
	p := enctest.New()
	key := sha256.Sum256([]byte("dynoseal streamhandler demo master key"))
	p.SetMaster(demoKeyID, key[:])
	return p
}

// demoKeyID is the KMS key of the demo's spec.
const demoKeyID = "alias/streamhandler-demo"
