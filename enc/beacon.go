package enc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
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
// b says. Beacons are made of the normalised form, and values whose forms
// are equal are one value to a lookup.
func (b Beacon) Normalize(plaintext []byte) []byte {
	out := plaintext
	if b.TrimSpace {
		out = []byte(strings.TrimSpace(string(out)))
	}
	if b.FoldCase {
		out = foldCase(out)
	}
	if len(out) > 0 && len(plaintext) > 0 && &out[0] == &plaintext[0] {
		out = slices.Clone(out)
	}
	return out
}

// foldCase maps every rune to the smallest rune of its simple case-folding
// orbit, so two valid UTF-8 texts map to the same bytes exactly when
// strings.EqualFold says they are equal. Bytes that are not UTF-8 stay as
// they are: unlike EqualFold, which reads each as U+FFFD, distinct invalid
// bytes stay distinct.
func foldCase(p []byte) []byte {
	out := make([]byte, 0, len(p))
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
	roots := map[string][]byte{}
	defer func() {
		for _, k := range roots {
			clear(k)
		}
	}()
	out := make([]string, len(reqs))
	for i, r := range reqs {
		if err := r.Beacon.Validate(); err != nil {
			return nil, r.fail(i, err)
		}
		ref := KeyRef{KeyID: r.Beacon.KeyID, Region: r.Beacon.Region}
		id := string(ref.appendID(nil))
		root, ok := roots[id]
		if !ok {
			var err error
			if root, err = e.beaconRoot(ctx, ref, id); err != nil {
				return nil, r.fail(i, err)
			}
			roots[id] = root
		}
		out[i] = r.compute(root)
	}
	return out, nil
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

// compute derives the key of the request's attribute and context from root
// and returns the beacon of its normalised plaintext.
func (r BeaconRequest) compute(root []byte) string {
	derive := hmac.New(sha256.New, root)
	info := appendLengthPrefixed([]byte("attribute"), r.Attribute)
	for _, k := range slices.Sorted(maps.Keys(r.ItemContext)) {
		info = appendLengthPrefixed(appendLengthPrefixed(info, k), r.ItemContext[k])
	}
	derive.Write(info)
	key := derive.Sum(nil)
	defer clear(key)
	plain := r.Beacon.Normalize(r.Plaintext)
	defer clear(plain)
	mac := hmac.New(sha256.New, key)
	mac.Write(plain)
	v := binary.BigEndian.Uint64(mac.Sum(nil)) >> (64 - r.Beacon.Bits)
	return fmt.Sprintf("%0*x", r.Beacon.Width(), v)
}

// beaconRoot returns the root beacon key of ref: from the beacon cache
// when it holds it, else from KMS.
func (e *Encryptor) beaconRoot(ctx context.Context, ref KeyRef, id string) (root []byte, err error) {
	if e.beaconKeys != nil {
		var done func(error)
		if root, _, done, err = e.beaconKeys.takeOrLead(ctx, id, 0); err != nil {
			return nil, err
		}
		if done == nil {
			e.stats.hits.Add(1)
			e.obs.hit(ctx, CacheBeacon)
			return root, nil
		}
		e.stats.misses.Add(1)
		e.obs.miss(ctx, CacheBeacon)
		defer func() { done(err) }() // err is the named result: what KMS said
	}
	if root, err = e.generateMac(ctx, ref); err != nil {
		return nil, err
	}
	if e.beaconKeys != nil {
		e.beaconKeys.put(id, root, nil, 0)
	}
	return root, nil
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
