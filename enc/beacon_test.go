package enc_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
)

const beaconKey = "alias/beacons"

func beaconReq(plain string, bits int) enc.BeaconRequest {
	return enc.BeaconRequest{Beacon: enc.Beacon{KeyID: beaconKey, Bits: bits}, Attribute: "email_beacon", Plaintext: []byte(plain)}
}

// beacons computes the beacons of reqs with e, failing the test on error.
func beacons(t *testing.T, e *enc.Encryptor, reqs ...enc.BeaconRequest) []string {
	t.Helper()
	out, err := e.Beacons(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(reqs) {
		t.Fatalf("%d beacons for %d requests", len(out), len(reqs))
	}
	return out
}

func beaconOf(t *testing.T, e *enc.Encryptor, r enc.BeaconRequest) string {
	t.Helper()
	return beacons(t, e, r)[0]
}

// hmacSHA256 is written out here so the test does not share code with the
// derivation it checks.
func hmacSHA256(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

func len32(s string) []byte { return binary.BigEndian.AppendUint32([]byte(nil), uint32(len(s))) }

// handBeacon computes a beacon from the derivation documented in compute()
// of enc/beacon.go, given the MAC key of the KMS key and the plaintext
// already normalised.
func handBeacon(macKey []byte, attr string, ctx map[string]string, normalised string, bits int) string {
	root := hmacSHA256(macKey, []byte("dynoseal beacon key v1"))
	info := [][]byte{[]byte("attribute"), len32(attr), []byte(attr)}
	for _, k := range slices.Sorted(maps.Keys(ctx)) {
		info = append(info, len32(k), []byte(k), len32(ctx[k]), []byte(ctx[k]))
	}
	key := hmacSHA256(root, info...)
	v := binary.BigEndian.Uint64(hmacSHA256(key, []byte(normalised))) >> (64 - bits)
	return fmt.Sprintf("%0*x", (bits+3)/4, v)
}

// The format, checked against a computation by hand and against values
// computed once with Python's hmac module from the same description.
func TestBeaconMatchesTheDocumentedDerivation(t *testing.T) {
	keys := enctest.New()
	macKey := make([]byte, 32)
	for i := range macKey {
		macKey[i] = byte(i)
	}
	keys.SetMacKey(beaconKey, macKey)
	e := enc.New(keys)
	ctx := map[string]string{"tenant": "acme", "app": "shop"}
	python := map[int]string{1: "1", 7: "67", 20: "cf5a8", 64: "cf5a87a121b60059"}
	for _, bits := range []int{1, 7, 20, 64} {
		r := enc.BeaconRequest{
			Beacon:      enc.Beacon{KeyID: beaconKey, Bits: bits, TrimSpace: true, FoldCase: true},
			Attribute:   "email_beacon",
			Plaintext:   []byte("  Alice@Example.COM\n"),
			ItemContext: ctx,
		}
		got := beaconOf(t, e, r)
		if want := handBeacon(macKey, "email_beacon", ctx, "ALICE@EXAMPLE.COM", bits); got != want || got != python[bits] {
			t.Errorf("Bits %d: beacon %s, by hand %s, by Python %s", bits, got, want, python[bits])
		}
	}
}

// Equal inputs give equal beacons, in one call, across calls and across
// encryptors and providers (enctest's HMAC keys are fixed per name).
func TestBeaconsAreDeterministic(t *testing.T) {
	a := enc.New(enctest.New())
	b := enc.New(enctest.New(), enc.WithCache(enc.CacheLimits{}))
	reqs := []enc.BeaconRequest{beaconReq("a@b.c", 64), beaconReq("x@y.z", 64), beaconReq("a@b.c", 64)}
	first := beacons(t, a, reqs...)
	if first[0] != first[2] || first[0] == first[1] {
		t.Fatalf("beacons %q: want equal for equal plaintexts only", first)
	}
	for _, e := range []*enc.Encryptor{a, b, b} {
		if again := beacons(t, e, reqs...); !slices.Equal(again, first) {
			t.Fatalf("beacons %q, then %q", first, again)
		}
	}
}

// Every beacon is Width lowercase hex digits, zero-padded, of a value
// below 2^Bits: the first Bits bits of the 64-bit beacon.
func TestBeaconBitsAndWidth(t *testing.T) {
	e := enc.New(enctest.New())
	for _, plain := range []string{"a@b.c", "x@y.z", ""} {
		full := parseBeacon(t, beaconOf(t, e, beaconReq(plain, 64)), 64)
		for bits := 1; bits <= enc.MaxBeaconBits; bits++ {
			got := beaconOf(t, e, beaconReq(plain, bits))
			if want := fmt.Sprintf("%0*x", (bits+3)/4, full>>(64-bits)); got != want {
				t.Fatalf("Bits %d of %q: %s, want %s", bits, plain, got, want)
			}
			parseBeacon(t, got, bits)
		}
	}
}

// parseBeacon checks the form of a beacon of bits bits and returns its value.
func parseBeacon(t *testing.T, s string, bits int) uint64 {
	t.Helper()
	width := enc.Beacon{Bits: bits}.Width()
	if width != (bits+3)/4 || len(s) != width || strings.ToLower(s) != s {
		t.Fatalf("Bits %d: beacon %q, Width %d", bits, s, width)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil || (bits < 64 && v>>bits != 0) {
		t.Fatalf("Bits %d: beacon %q is not hex below 2^%d (%v)", bits, s, bits, err)
	}
	return v
}

// A beacon whose value is small keeps its leading zeros.
func TestBeaconIsZeroPadded(t *testing.T) {
	e := enc.New(enctest.New())
	for i := range 1000 {
		s := beaconOf(t, e, beaconReq(strconv.Itoa(i), 64))
		if v := parseBeacon(t, s, 64); v < 1<<60 {
			if s[0] != '0' {
				t.Fatalf("beacon %s of value %x is not zero-padded", s, v)
			}
			return
		}
	}
	t.Fatal("no beacon below 2^60 among 1000 (each has odds of 1/16)")
}

func TestBeaconValidate(t *testing.T) {
	cases := []struct {
		b    enc.Beacon
		want string // in the error; "" for none
	}{
		{enc.Beacon{KeyID: beaconKey, Bits: 1}, ""},
		{enc.Beacon{KeyID: beaconKey, Bits: 64}, ""},
		{enc.Beacon{Bits: 16}, "no KeyID"},
		{enc.Beacon{KeyID: "  ", Bits: 16}, "no KeyID"},
		{enc.Beacon{KeyID: beaconKey}, "0 bits"},
		{enc.Beacon{KeyID: beaconKey, Bits: 65}, "65 bits"},
		{enc.Beacon{KeyID: beaconKey, Bits: -1}, "-1 bits"},
	}
	for _, c := range cases {
		err := c.b.Validate()
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", c.b, err, c.want)
		}
	}
}

// An invalid request fails the call with an *Error naming it.
func TestBeaconsRefuseAnInvalidBeacon(t *testing.T) {
	for _, bad := range []enc.Beacon{{Bits: 16}, {KeyID: beaconKey}, {KeyID: beaconKey, Bits: 65}} {
		e := enc.New(enctest.New())
		reqs := []enc.BeaconRequest{beaconReq("a@b.c", 16), {Beacon: bad, Attribute: "phone_beacon", Plaintext: []byte("555")}}
		out, err := e.Beacons(context.Background(), reqs)
		checkBeaconErr(t, err, enc.Error{Op: enc.OpBeacon, Attribute: "phone_beacon", KeyID: bad.KeyID, Index: 1})
		if out != nil || strings.Contains(err.Error(), "555") {
			t.Fatalf("beacons %q, error %v", out, err)
		}
	}
}

// checkBeaconErr fails unless err is an *enc.Error with want's fields
// (Err aside).
func checkBeaconErr(t *testing.T, err error, want enc.Error) {
	t.Helper()
	e, ok := enc.AsError(err)
	if !ok {
		t.Fatalf("err = %v (%T), want an *enc.Error", err, err)
	}
	got := *e
	got.Err = nil
	if got != want {
		t.Fatalf("error %+v, want %+v", got, want)
	}
}

// A provider's error fails the call with the *Error of the first request
// that needed its key.
func TestBeaconsReportTheFailingRequest(t *testing.T) {
	keys := enctest.New()
	keys.Fail = func(op string, key enc.KeyRef) error {
		if op == "GenerateMac" && key.KeyID == "alias/disabled" {
			return fmt.Errorf("kms said: %w", enc.ErrKeyDisabled)
		}
		return nil
	}
	bad := beaconReq("a@b.c", 16)
	bad.Beacon.KeyID, bad.Attribute = "alias/disabled", "phone_beacon"
	_, err := enc.New(keys).Beacons(context.Background(), []enc.BeaconRequest{beaconReq("a@b.c", 16), beaconReq("x@y.z", 16), bad, bad})
	if !errors.Is(err, enc.ErrKeyDisabled) {
		t.Fatalf("err = %v, want ErrKeyDisabled", err)
	}
	checkBeaconErr(t, err, enc.Error{Op: enc.OpBeacon, Attribute: "phone_beacon", KeyID: "alias/disabled", Index: 2})
	if n := keys.Macs.Load(); n != 2 {
		t.Fatalf("%d GenerateMac calls, want one per key", n)
	}
}

// dataKeysOnly is a provider without MacGenerator.
type dataKeysOnly struct{ enc.KeyProvider }

func TestBeaconsNeedAMacGenerator(t *testing.T) {
	e := enc.New(dataKeysOnly{enctest.New()})
	_, err := e.Beacons(context.Background(), []enc.BeaconRequest{beaconReq("a@b.c", 16)})
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("err = %v, want ErrUnsupported", err)
	}
	checkBeaconErr(t, err, enc.Error{Op: enc.OpBeacon, Attribute: "email_beacon", KeyID: beaconKey})
	if n := e.Stats().GenerateMacCalls; n != 0 {
		t.Fatalf("GenerateMacCalls = %d without a MacGenerator", n)
	}
}

// beaconKeys asks for beacons under two KMS keys, one of them in two
// regions: three root keys. (enctest's keys ignore the region, so the
// beacons of the two regions are equal; in KMS they are two keys.)
func beaconKeys() []enc.BeaconRequest {
	a, b, c := beaconReq("a@b.c", 16), beaconReq("x@y.z", 16), beaconReq("a@b.c", 16)
	b.Beacon.KeyID = "alias/other"
	c.Beacon.Region = "eu-west-1"
	return []enc.BeaconRequest{a, b, c, a, b, c}
}

func wantMacs(t *testing.T, keys *enctest.Provider, e *enc.Encryptor, want int64) {
	t.Helper()
	if got := [2]int64{keys.Macs.Load(), e.Stats().GenerateMacCalls}; got != [2]int64{want, want} {
		t.Fatalf("GenerateMac calls (provider, Stats) = %v, want %d", got, want)
	}
}

func TestBeaconsWithoutCacheCallOncePerKeyAndCall(t *testing.T) {
	keys := enctest.New()
	e := enc.New(keys)
	beacons(t, e, beaconKeys()...)
	wantMacs(t, keys, e, 3)
	beacons(t, e, beaconKeys()...)
	wantMacs(t, keys, e, 6)
}

// With the beacon cache, concurrent calls share one GenerateMac per key,
// made by whichever asked first, until ClearCaches. Run with -race.
func TestBeaconCacheCallsOncePerProcess(t *testing.T) {
	for _, opt := range []enc.Option{enc.WithCache(enc.CacheLimits{}), enc.WithBeaconCache(enc.CacheLimits{})} {
		keys := enctest.New()
		keys.Fail = func(string, enc.KeyRef) error {
			time.Sleep(5 * time.Millisecond) // a slow KMS: callers overlap
			return nil
		}
		e := enc.New(keys, opt)
		want := beacons(t, e, beaconKeys()...)
		concurrentBeacons(t, e, want, 16, 20)
		wantMacs(t, keys, e, 3)
		e.ClearCaches()
		beacons(t, e, beaconKeys()...)
		wantMacs(t, keys, e, 6)
	}
}

// concurrentBeacons runs rounds calls in each of workers goroutines and
// fails unless every call gives want.
func concurrentBeacons(t *testing.T, e *enc.Encryptor, want []string, workers, rounds int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- beaconRounds(e, want, rounds)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// beaconRounds makes rounds calls and returns the first error or wrong
// result.
func beaconRounds(e *enc.Encryptor, want []string, rounds int) error {
	for range rounds {
		got, err := e.Beacons(context.Background(), beaconKeys())
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("beacons %q, want %q", got, want)
		}
	}
	return nil
}

// Callers that miss the cache at once wait for the first one's
// GenerateMac instead of each asking.
func TestBeaconCacheSharesOneFirstCall(t *testing.T) {
	keys := enctest.New()
	keys.Fail = func(string, enc.KeyRef) error {
		time.Sleep(20 * time.Millisecond)
		return nil
	}
	e := enc.New(keys, enc.WithBeaconCache(enc.CacheLimits{}))
	concurrentBeacons(t, e, beacons(t, enc.New(enctest.New()), beaconKeys()...), 32, 1)
	wantMacs(t, keys, e, 3)
}

func TestBeaconDependsOnAttributeAndContext(t *testing.T) {
	e := enc.New(enctest.New())
	base := beaconReq("a@b.c", 64)
	variants := map[string]func(*enc.BeaconRequest){
		"base":            func(*enc.BeaconRequest) {},
		"attribute":       func(r *enc.BeaconRequest) { r.Attribute = "phone_beacon" },
		"empty attribute": func(r *enc.BeaconRequest) { r.Attribute = "" },
		"context":         func(r *enc.BeaconRequest) { r.ItemContext = map[string]string{"tenant": "acme"} },
		"other value":     func(r *enc.BeaconRequest) { r.ItemContext = map[string]string{"tenant": "umbrella"} },
		"other key":       func(r *enc.BeaconRequest) { r.ItemContext = map[string]string{"org": "acme"} },
		"split otherwise": func(r *enc.BeaconRequest) { r.ItemContext = map[string]string{"tenanta": "cme"} },
		"two keys":        func(r *enc.BeaconRequest) { r.ItemContext = map[string]string{"tenant": "acme", "app": "shop"} },
		"attribute moved": func(r *enc.BeaconRequest) {
			r.Attribute, r.ItemContext = "email_beacontenant", map[string]string{"": "acme"}
		},
		"other plaintext": func(r *enc.BeaconRequest) { r.Plaintext = []byte("a@b.d") },
		"other KMS key":   func(r *enc.BeaconRequest) { r.Beacon.KeyID = "alias/other" },
	}
	seen := map[string]string{}
	for name, change := range variants {
		r := base
		change(&r)
		b := beaconOf(t, e, r)
		if other, ok := seen[b]; ok {
			t.Errorf("%s and %s share beacon %s", name, other, b)
		}
		seen[b] = name
	}
}

// The order an item context is built in does not matter.
func TestBeaconContextOrderDoesNotMatter(t *testing.T) {
	e := enc.New(enctest.New())
	r1, r2 := beaconReq("a@b.c", 64), beaconReq("a@b.c", 64)
	r1.ItemContext = map[string]string{}
	r2.ItemContext = map[string]string{}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		r1.ItemContext[k] = k + "1"
	}
	for _, k := range []string{"e", "d", "c", "b", "a"} {
		r2.ItemContext[k] = k + "1"
	}
	if got := beacons(t, e, r1, r2); got[0] != got[1] {
		t.Fatalf("one context, two beacons %q", got)
	}
}

// sameBeacon reports whether x and y have one beacon under b.
func sameBeacon(t *testing.T, e *enc.Encryptor, b enc.Beacon, x, y string) bool {
	t.Helper()
	r := enc.BeaconRequest{Beacon: b, Attribute: "email_beacon"}
	rx, ry := r, r
	rx.Plaintext, ry.Plaintext = []byte(x), []byte(y)
	got := beacons(t, e, rx, ry)
	return got[0] == got[1]
}

func TestBeaconTrimSpace(t *testing.T) {
	e := enc.New(enctest.New())
	trim := enc.Beacon{KeyID: beaconKey, Bits: 64, TrimSpace: true}
	keep := trim
	keep.TrimSpace = false
	for _, c := range []struct {
		x, y       string
		equal      bool // under TrimSpace
		normalised string
	}{
		{" a@b.c ", "a@b.c", true, "a@b.c"},
		{"\t\n a@b.c\r\n", "a@b.c", true, "a@b.c"},
		{"\u00a0a@b.c\u3000", "a@b.c", true, "a@b.c"}, // Unicode white space
		{"a b", "ab", false, "a b"},                   // inner space stays
		{"A@B.C", "a@b.c", false, "A@B.C"},            // no case folding
		{"   ", "", true, ""},
	} {
		if got := sameBeacon(t, e, trim, c.x, c.y); got != c.equal {
			t.Errorf("TrimSpace: %q and %q share a beacon: %t, want %t", c.x, c.y, got, c.equal)
		}
		if got := string(trim.Normalize([]byte(c.x))); got != c.normalised {
			t.Errorf("TrimSpace: Normalize(%q) = %q, want %q", c.x, got, c.normalised)
		}
		if c.x != c.y && sameBeacon(t, e, keep, c.x, c.y) {
			t.Errorf("without TrimSpace %q and %q share a beacon", c.x, c.y)
		}
	}
}

// foldPairs are pairs of valid UTF-8 texts that strings.EqualFold says are,
// or are not, equal.
var foldPairs = [][2]string{
	{"Alice@Example.COM", "alice@example.com"},
	{"K", "\u212a"}, {"k", "\u212a"}, // Kelvin sign
	{"\u00c5", "\u212b"}, {"\u00e5", "\u212b"}, // Angstrom sign
	{"s", "\u017f"}, {"S", "\u017f"}, // long s
	{"\u00df", "\u1e9e"}, {"\u00df", "ss"}, {"\u00df", "SS"}, {"stra\u00dfe", "STRASSE"}, // sharp s
	{"\u03a3", "\u03c3"}, {"\u03c3", "\u03c2"}, {"\u03a3", "\u03c2"}, {"\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3", "\u1f40\u03b4\u03c5\u03c3\u03c3\u03b5\u03cd\u03c2"}, // sigma forms
	{"\u0130", "i"}, {"\u0131", "I"}, {"\u0130", "\u0131"}, // Turkish dotted and dotless i
	{"\u01c4", "\u01c5"}, {"\u01c5", "\u01c6"}, // title case DŽ
	{"\ufb00", "ff"},             // ligature
	{"\u00e9", "e\u0301"},        // no canonical equivalence
	{"\u00e9", "\u00c9"},         // é and É
	{"\u0434", "\u0414"},         // Cyrillic
	{"\U00010400", "\U00010428"}, // Deseret, outside the BMP
	{"", ""}, {"a", "b"}, {"ab", "a"},
}

func TestBeaconFoldCaseAgreesWithEqualFold(t *testing.T) {
	e := enc.New(enctest.New())
	fold := enc.Beacon{KeyID: beaconKey, Bits: 64, FoldCase: true}
	for _, p := range foldPairs {
		want := strings.EqualFold(p[0], p[1])
		if got := bytes.Equal(fold.Normalize([]byte(p[0])), fold.Normalize([]byte(p[1]))); got != want {
			t.Errorf("Normalize makes %q and %q one: %t, EqualFold says %t", p[0], p[1], got, want)
		}
		if got := sameBeacon(t, e, fold, p[0], p[1]); got != want {
			t.Errorf("%q and %q share a beacon: %t, EqualFold says %t", p[0], p[1], got, want)
		}
	}
}

// Every rune normalises to a rune of its case-folding orbit, the same for
// the whole orbit.
func TestBeaconFoldCaseEveryRune(t *testing.T) {
	fold := enc.Beacon{FoldCase: true}
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) || unicode.SimpleFold(r) == r {
			continue // no other case: checked by the table and the next test
		}
		n := fold.Normalize(utf8.AppendRune(nil, r))
		if !strings.EqualFold(string(r), string(n)) || !bytes.Equal(fold.Normalize(utf8.AppendRune(nil, unicode.SimpleFold(r))), n) {
			t.Fatalf("U+%04X normalises to %q", r, n)
		}
	}
}

// Bytes that are not UTF-8 stay as they are, so distinct invalid bytes
// stay distinct (strings.EqualFold reads every one as U+FFFD); the valid
// runes around them are folded.
func TestBeaconFoldCaseKeepsInvalidUTF8(t *testing.T) {
	fold := enc.Beacon{FoldCase: true, TrimSpace: true}
	for in, want := range map[string]string{
		"a\xffb":         "A\xffB",
		"\xc3":           "\xc3",
		"\xc3(k\xe2\x84": "\xc3(K\xe2\x84",
		"\xed\xa0\x80":   "\xed\xa0\x80", // an encoded surrogate
		" \xfe ":         "\xfe",
		"\ufffd":         "\ufffd", // the replacement character itself is valid
	} {
		if got := string(fold.Normalize([]byte(in))); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
	if bytes.Equal(fold.Normalize([]byte("\xff")), fold.Normalize([]byte("\xfe"))) {
		t.Error("two invalid bytes normalise alike")
	}
}

// Neither Normalize nor Beacons changes the caller's plaintext, whatever
// the options (Beacons wipes its own copy).
func TestBeaconsLeaveThePlaintextAlone(t *testing.T) {
	e := enc.New(enctest.New())
	for _, b := range []enc.Beacon{{}, {TrimSpace: true}, {FoldCase: true}, {TrimSpace: true, FoldCase: true}} {
		b.KeyID, b.Bits = beaconKey, 16
		plain := []byte("Alice@Example.com")
		n := b.Normalize(plain)
		if len(n) > 0 {
			n[0] = 'X'
		}
		beacons(t, e, enc.BeaconRequest{Beacon: b, Attribute: "email_beacon", Plaintext: plain})
		if string(plain) != "Alice@Example.com" {
			t.Fatalf("%+v: plaintext became %q", b, plain)
		}
	}
}

// beaconObserver records what an enc.Observer is told.
type beaconObserver struct {
	mu     sync.Mutex
	events []string
}

func (o *beaconObserver) add(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, fmt.Sprintf(format, args...))
}

func (o *beaconObserver) StartKMS(ctx context.Context, op string, key enc.KeyRef, previous int) (context.Context, func(int, error)) {
	o.add("StartKMS %s %s %q %d %d", op, key.KeyID, key.Region, len(key.Context), previous)
	return ctx, func(lookups int, err error) { o.add("EndKMS %d %v", lookups, err) }
}

func (o *beaconObserver) CacheLookup(_ context.Context, cache string, hit bool) {
	o.add("CacheLookup %s %t", cache, hit)
}

func (o *beaconObserver) CacheEvicted(cache, reason string) {
	o.add("CacheEvicted %s %s", cache, reason)
}

func TestBeaconsAreObserved(t *testing.T) {
	var o beaconObserver
	e := enc.New(enctest.New(), enc.WithObserver(&o), enc.WithCache(enc.CacheLimits{}))
	r := beaconReq("a@b.c", 16)
	r.Beacon.Region = "eu-west-1"
	beacons(t, e, r, r)
	beacons(t, e, r)
	want := []string{
		"CacheLookup beacon false",
		`StartKMS GenerateMac alias/beacons "eu-west-1" 0 0`,
		"EndKMS 0 <nil>",
		"CacheLookup beacon true",
	}
	if !slices.Equal(o.events, want) {
		t.Fatalf("observer heard\n%s\nwant\n%s", strings.Join(o.events, "\n"), strings.Join(want, "\n"))
	}
	if st := e.Stats(); st.CacheHits != 1 || st.CacheMisses != 1 || st.GenerateMacCalls != 1 {
		t.Fatalf("Stats %+v", st)
	}
}

// Only beacons use the beacon cache: Seal and Open still go to KMS.
func TestBeaconCacheAloneCachesNoDataKeys(t *testing.T) {
	keys := enctest.New()
	e := enc.New(keys, enc.WithBeaconCache(enc.CacheLimits{}))
	for range 2 {
		beacons(t, e, beaconReq("a@b.c", 16))
		if _, err := e.Encrypt(context.Background(), enc.Spec{KeyID: "alias/data"}, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if got := [2]int64{keys.Macs.Load(), keys.Generates.Load()}; got != [2]int64{1, 2} {
		t.Fatalf("GenerateMac and GenerateDataKey calls %v, want [1 2]", got)
	}
}
