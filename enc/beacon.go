package enc

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Beacon says how the beacon of an encrypted attribute is made: a keyed
// hash (HMAC-SHA-256) of its plaintext, cut to Bits bits and stored beside
// the sealed value, so that items can be found by the value without
// decrypting them. Equal plaintexts (after normalisation) in the same
// attribute and encryption context have equal beacons; unequal ones share a
// beacon with probability 2^-Bits, so a lookup by beacon finds candidates
// that must be opened and compared. A beacon reveals which items hold equal
// values and how often a value occurs, never the value itself.
type Beacon struct {
	// KeyID is a KMS HMAC key (key spec HMAC_256, key usage
	// GENERATE_VERIFY_MAC): ID, ARN, alias name or alias ARN. Required.
	// The beacon key is derived from it with one kms:GenerateMac call.
	KeyID string
	// Region of the KMS key; empty means the region of the AWS configuration.
	Region string
	// Bits is the length of the beacon, 1 to 64: shorter beacons make more
	// false candidates and say less about how often a value occurs.
	Bits int
	// TrimSpace removes leading and trailing white space before hashing, so
	// " a@b.c " and "a@b.c" are one value.
	TrimSpace bool
	// FoldCase makes letters that differ only in case one value (Unicode
	// simple case folding, as strings.EqualFold compares).
	FoldCase bool
}

// MaxBeaconBits is the longest beacon a [Beacon] makes.
const MaxBeaconBits = 64

// Validate reports a beacon that can never work.
func (b Beacon) Validate() error {
	switch {
	case strings.TrimSpace(b.KeyID) == "":
		return errors.New("beacon has no KeyID")
	case b.Bits < 1 || b.Bits > MaxBeaconBits:
		return fmt.Errorf("beacon for key %s has %d bits, want 1 to %d", b.KeyID, b.Bits, MaxBeaconBits)
	}
	return nil
}

// Width is the number of hexadecimal digits of b's beacons.
func (b Beacon) Width() int { return (b.Bits + 3) / 4 }

// Normalize returns plaintext as b compares it: trimmed and case-folded as
// b says, in a new slice. Beacons are made of the normalised form, and
// values whose forms are equal are one value to a lookup.
func (b Beacon) Normalize(plaintext []byte) []byte {
	return b.appendNormalized(nil, plaintext)
}

func (b Beacon) appendNormalized(dst, plaintext []byte) []byte {
	if b.TrimSpace {
		plaintext = bytes.TrimSpace(plaintext)
	}
	if b.FoldCase {
		return appendFolded(dst, plaintext)
	}
	return append(dst, plaintext...)
}

// appendFolded appends p to out with every rune mapped to the smallest rune
// of its simple case-folding orbit, so two valid UTF-8 texts map to the same
// bytes exactly when
// strings.EqualFold says they are equal. Bytes that are not UTF-8 stay as
// they are: unlike EqualFold, which reads each as U+FFFD, distinct invalid
// bytes stay distinct.
func appendFolded(out, p []byte) []byte {
	for len(p) > 0 {
		r, n := utf8.DecodeRune(p)
		if r == utf8.RuneError && n <= 1 {
			out = append(out, p[0])
			p = p[1:]
			continue
		}
		out = utf8.AppendRune(out, foldRune(r))
		p = p[n:]
	}
	return out
}

func foldRune(r rune) rune {
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	return least
}

// MacGenerator is an optional interface of a [KeyProvider], needed for
// beacons: it computes an HMAC with a KMS HMAC key, which never leaves KMS
// (kms:GenerateMac). kmsx.Provider implements it. key.Context is always
// empty: KMS takes no encryption context for MACs.
type MacGenerator interface {
	GenerateMac(ctx context.Context, key KeyRef, message []byte) ([]byte, error)
}

// BeaconRequest is one beacon to compute.
type BeaconRequest struct {
	Beacon Beacon
	// Attribute is the attribute the beacon is stored in: beacons of equal
	// values differ between attributes.
	Attribute string
	Plaintext []byte
	// ItemContext is the encryption context the value is sealed with from
	// its item (the values of Spec.ContextFrom, e.g. a tenant): beacons of
	// equal values differ between contexts, so a lookup must name it.
	ItemContext map[string]string
}

// OpBeacon is the Op of an [Error] from [Encryptor.Beacons].
const OpBeacon Op = "beacon"

// beaconKeyLabel is the message whose MAC under a KMS HMAC key is the root
// of every beacon key derived from that KMS key.
const beaconKeyLabel = "dynoseal beacon key v1"

// Beacons computes the beacons of reqs, in order, as lowercase hexadecimal
// of Beacon.Width digits. It asks KMS for one MAC per distinct KMS key and
// Region, or none when the beacon cache (WithCache, WithBeaconCache) holds
// its result; everything else is computed locally. It works in every mode:
// beacons need neither kms:GenerateDataKey nor kms:Decrypt.
func (e *Encryptor) Beacons(ctx context.Context, reqs []BeaconRequest) ([]string, error) {
	c := beaconCall{roots: map[string][]byte{}, macs: map[string]hash.Hash{}}
	defer c.wipe()
	out := make([]string, len(reqs))
	for i, r := range reqs {
		if err := r.Beacon.Validate(); err != nil {
			return nil, r.fail(i, err)
		}
		mac, err := c.macFor(ctx, e, r)
		if err != nil {
			return nil, r.fail(i, err)
		}
		out[i] = c.digest(mac, r.Beacon)
		clear(c.plain)
	}
	return out, nil
}

// beaconCall is the work of one Beacons call: the root key of each KMS key
// and the keyed hash of each beacon key (attribute and context) it met, so
// that a batch of items of one tenant derives its key once, and scratch
// buffers for the plaintexts.
type beaconCall struct {
	roots map[string][]byte
	macs  map[string]hash.Hash
	id    []byte // scratch of macFor
	plain []byte // the request's normalised plaintext
	sum   []byte
}

// macFor returns the keyed hash of r's beacon key, holding r's normalised
// plaintext already.
func (c *beaconCall) macFor(ctx context.Context, e *Encryptor, r BeaconRequest) (hash.Hash, error) {
	ref := KeyRef{KeyID: r.Beacon.KeyID, Region: r.Beacon.Region}
	c.id = ref.appendID(c.id[:0])
	rootID := len(c.id)
	c.id = appendContext(appendLengthPrefixed(c.id, r.Attribute), r.ItemContext)
	mac, ok := c.macs[string(c.id)]
	if !ok {
		root, ok := c.roots[string(c.id[:rootID])]
		if !ok {
			var err error
			if root, err = e.beaconRoot(ctx, ref, string(c.id[:rootID])); err != nil {
				return nil, err
			}
			c.roots[string(c.id[:rootID])] = root
		}
		mac = beaconMAC(root, c.id[rootID:])
		c.macs[string(c.id)] = mac
	}
	mac.Reset()
	c.plain = r.Beacon.appendNormalized(c.plain[:0], r.Plaintext)
	mac.Write(c.plain)
	return mac, nil
}

// beaconMAC derives the beacon key of info (the attribute and the context,
// length-prefixed) from root, and returns the keyed hash under it.
func beaconMAC(root, info []byte) hash.Hash {
	derive := hmac.New(sha256.New, root)
	derive.Write(append([]byte("attribute"), info...))
	key := derive.Sum(nil)
	defer clear(key)
	return hmac.New(sha256.New, key)
}

// digest reads the beacon out of mac, which holds the plaintext: the first
// 8 bytes of the MAC, cut to b.Bits, in b.Width hexadecimal digits.
func (c *beaconCall) digest(mac hash.Hash, b Beacon) string {
	c.sum = mac.Sum(c.sum[:0])
	v := binary.BigEndian.Uint64(c.sum) >> (64 - b.Bits)
	var buf [16]byte
	for i := b.Width() - 1; i >= 0; i-- {
		buf[i] = hexDigits[v&0xf]
		v >>= 4
	}
	return string(buf[:b.Width()])
}

const hexDigits = "0123456789abcdef"

// wipe clears the keys and plaintexts of the call. The keyed hashes hold
// their keys inside crypto/hmac, out of reach; they go with the call.
func (c *beaconCall) wipe() {
	for _, k := range c.roots {
		clear(k)
	}
	clear(c.plain)
	clear(c.sum)
}

// CheckBeacon derives b's root key as Beacons would (one kms:GenerateMac,
// or none when the beacon cache holds it, which it then does), so that an
// HMAC key that is missing, disabled, of the wrong kind or not allowed
// fails a service at start-up rather than on its first write or lookup.
func (e *Encryptor) CheckBeacon(ctx context.Context, b Beacon) error {
	fail := func(err error) error { return &Error{Op: OpCheck, KeyID: b.KeyID, Err: err} }
	if err := b.Validate(); err != nil {
		return fail(err)
	}
	ref := KeyRef{KeyID: b.KeyID, Region: b.Region}
	root, err := e.beaconRoot(ctx, ref, string(ref.appendID(nil)))
	clear(root)
	if err != nil {
		return fail(err)
	}
	return nil
}

func (r BeaconRequest) fail(i int, err error) error {
	return &Error{Op: OpBeacon, Attribute: r.Attribute, KeyID: r.Beacon.KeyID, Index: i, Err: err}
}

// beaconRoot returns the root beacon key of ref: from the beacon cache
// when it holds it, else from KMS.
func (e *Encryptor) beaconRoot(ctx context.Context, ref KeyRef, id string) ([]byte, error) {
	return e.cachedKey(ctx, e.beaconKeys, CacheBeacon, id, beaconRootSize, func() ([]byte, error) {
		return e.generateMac(ctx, ref)
	})
}

// beaconRootSize is what HMAC_SHA_256 returns.
const beaconRootSize = sha256.Size

func (e *Encryptor) generateMac(ctx context.Context, ref KeyRef) ([]byte, error) {
	mg, ok := e.keys.(MacGenerator)
	if !ok {
		return nil, fmt.Errorf("%w: the key provider (%T) cannot compute MACs, which beacons need", errors.ErrUnsupported, e.keys)
	}
	start := time.Now()
	spanCtx, call := e.obs.startKMS(ctx, KMSGenerateMac, ref, 0)
	root, err := mg.GenerateMac(spanCtx, ref, []byte(beaconKeyLabel))
	if errors.Is(err, errors.ErrUnsupported) {
		call.unmade(ctx, 0)
		return nil, err // the provider declined without a KMS call
	}
	call.end(ctx, 0, err)
	e.stats.kmsNanos.Add(int64(time.Since(start)))
	e.stats.mac.Add(1)
	if err != nil {
		return nil, err
	}
	if len(root) != beaconRootSize {
		clear(root)
		return nil, fmt.Errorf("key provider returned a %d-byte MAC, want %d (HMAC_SHA_256 of an HMAC_256 key)", len(root), beaconRootSize)
	}
	return root, nil
}
