package enctest_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
)

func mac(t *testing.T, p *enctest.Provider, keyID string) []byte {
	t.Helper()
	out, err := p.GenerateMac(context.Background(), enc.KeyRef{KeyID: keyID}, []byte("message"))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// A name's HMAC key is derived from the name as documented, so it is the
// same in every provider, and differs between names.
func TestGenerateMacIsFixedPerName(t *testing.T) {
	a, b := enctest.New(), enctest.New()
	derived := sha256.Sum256([]byte("enctest HMAC key alias/beacons"))
	if want := hmacSHA256(derived[:], []byte("message")); !bytes.Equal(mac(t, a, "alias/beacons"), want) {
		t.Fatal("the MAC is not the documented one")
	}
	if !bytes.Equal(mac(t, a, "alias/beacons"), mac(t, b, "alias/beacons")) {
		t.Fatal("two providers disagree on one name")
	}
	if bytes.Equal(mac(t, a, "alias/beacons"), mac(t, a, "alias/other")) {
		t.Fatal("two names share a key")
	}
	if n := a.Macs.Load(); n != 4 {
		t.Fatalf("Macs = %d, want 4", n)
	}
}

// SetMacKey fixes a name's key; an alias pointed at that name uses it.
func TestSetMacKeyAndAliases(t *testing.T) {
	p := enctest.New()
	key := bytes.Repeat([]byte{7}, 32)
	p.SetMacKey("key-1", key)
	p.SetAlias("alias/beacons", "key-1")
	want := hmacSHA256(key, []byte("message"))
	for _, id := range []string{"key-1", "alias/beacons"} {
		if !bytes.Equal(mac(t, p, id), want) {
			t.Fatalf("%s: not the MAC under the key SetMacKey fixed", id)
		}
	}
}

func TestGenerateMacHonoursFail(t *testing.T) {
	p := enctest.New()
	var ops []string
	p.Fail = func(op string, key enc.KeyRef) error {
		ops = append(ops, op+" "+key.KeyID)
		return enc.ErrKeyDisabled
	}
	out, err := p.GenerateMac(context.Background(), enc.KeyRef{KeyID: "alias/beacons"}, []byte("message"))
	if !errors.Is(err, enc.ErrKeyDisabled) || out != nil {
		t.Fatalf("GenerateMac = %x, %v; want the Fail error", out, err)
	}
	if len(ops) != 1 || ops[0] != "GenerateMac alias/beacons" || p.Macs.Load() != 1 {
		t.Fatalf("Fail saw %q, Macs = %d", ops, p.Macs.Load())
	}
}
