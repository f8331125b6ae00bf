package enc_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
)

func ExampleEncryptor_Encrypt() {
	ctx := context.Background()
	// enctest stands in for KMS; use kmsx.New() in a program.
	e := enc.New(enctest.New())
	s := enc.Spec{KeyID: "alias/my-app-key"}

	stored, err := e.Encrypt(ctx, s, []byte("123-45-6789"))
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.HasPrefix(stored, "ENC:AQ")) // version 1

	plain, err := e.Decrypt(ctx, s, stored)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(plain))
	// Output:
	// true
	// 123-45-6789
}

func ExampleEncryptor_Seal() {
	ctx := context.Background()
	e := enc.New(enctest.New())
	s := enc.Spec{KeyID: "alias/my-app-key"}

	stored, err := e.Seal(ctx, []enc.SealRequest{
		{Spec: s, Attribute: "ssn", Plaintext: []byte("123-45-6789")},
		{Spec: s, Attribute: "card", Plaintext: []byte("4111 1111 1111 1111")},
		{Spec: s, Attribute: "pin", Plaintext: []byte("0000")},
	})
	if err != nil {
		panic(err)
	}
	plain, err := e.Open(ctx, []enc.OpenRequest{
		{Spec: s, Attribute: "ssn", Stored: stored[0]},
		{Spec: s, Attribute: "card", Stored: stored[1]},
		{Spec: s, Attribute: "pin", Stored: stored[2]},
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s | %s | %s\n", plain[0], plain[1], plain[2])
	st := e.Stats()
	fmt.Println("GenerateDataKey:", st.GenerateDataKeyCalls, "Decrypt:", st.DecryptCalls)
	// Output:
	// 123-45-6789 | 4111 1111 1111 1111 | 0000
	// GenerateDataKey: 1 Decrypt: 1
}

// OpenEach opens what it can: one damaged value fails alone, with an error
// that names its attribute.
func ExampleEncryptor_OpenEach() {
	ctx := context.Background()
	e := enc.New(enctest.New())
	s := enc.Spec{KeyID: "alias/my-app-key"}
	stored, _ := e.Seal(ctx, []enc.SealRequest{
		{Spec: s, Attribute: "ssn", Plaintext: []byte("123-45-6789")},
		{Spec: s, Attribute: "card", Plaintext: []byte("4111 1111 1111 1111")},
	})
	plain, errs := e.OpenEach(ctx, []enc.OpenRequest{
		{Spec: s, Attribute: "ssn", Stored: stored[0]},
		{Spec: s, Attribute: "card", Stored: stored[1][:len(stored[1])-4] + "AAAA"}, // damaged
	})
	fmt.Printf("%s %v\n", plain[0], errs[0])
	fmt.Println(errors.Is(errs[1], enc.ErrInvalidCiphertext), errs[1])
	// Output:
	// 123-45-6789 <nil>
	// true dynoseal: decrypt attribute card with key alias/my-app-key: invalid ciphertext or encryption context: authentication failed
}

func ExampleWithCache() {
	ctx := context.Background()
	e := enc.New(enctest.New(), enc.WithCache(enc.CacheLimits{
		MaxAge:     5 * time.Minute,
		MaxUses:    1000,
		MaxEntries: 100,
	}))
	s := enc.Spec{KeyID: "alias/my-app-key"}

	// Ten separate calls, as ten requests of a service would make.
	var stored []string
	for i := range 10 {
		v, err := e.Encrypt(ctx, s, []byte(fmt.Sprint("value ", i)))
		if err != nil {
			panic(err)
		}
		stored = append(stored, v)
	}
	for _, v := range stored {
		if _, err := e.Decrypt(ctx, s, v); err != nil {
			panic(err)
		}
	}
	st := e.Stats()
	fmt.Println("GenerateDataKey:", st.GenerateDataKeyCalls, "Decrypt:", st.DecryptCalls)
	fmt.Println("hits:", st.CacheHits, "misses:", st.CacheMisses)
	// Output:
	// GenerateDataKey: 1 Decrypt: 1
	// hits: 18 misses: 2
}

func ExampleBinding() {
	ctx := context.Background()
	e := enc.New(enctest.New())
	s := enc.Spec{KeyID: "alias/my-app-key", Version: enc.Version2}

	// The SSN of USER#123 is bound to attribute ssn of that item.
	at := func(pk, attr string) enc.Binding {
		return enc.Binding{Attribute: attr, Key: []enc.KeyAttribute{enc.StringKey("pk", pk)}}
	}
	stored, err := e.SealOne(ctx, enc.SealRequest{Spec: s, Plaintext: []byte("123-45-6789"), Binding: at("USER#123", "ssn")})
	if err != nil {
		panic(err)
	}

	plain, err := e.OpenOne(ctx, enc.OpenRequest{Spec: s, Stored: stored, Binding: at("USER#123", "ssn")})
	fmt.Println(string(plain), err)

	// Copied to another user, or to another attribute, it does not open.
	_, err = e.OpenOne(ctx, enc.OpenRequest{Spec: s, Stored: stored, Binding: at("USER#666", "ssn")})
	fmt.Println(errors.Is(err, enc.ErrInvalidCiphertext))
	_, err = e.OpenOne(ctx, enc.OpenRequest{Spec: s, Stored: stored, Binding: at("USER#123", "nickname")})
	fmt.Println(errors.Is(err, enc.ErrInvalidCiphertext))
	// Output:
	// 123-45-6789 <nil>
	// true
	// true
}

func ExampleSpec_contextFrom() {
	ctx := context.Background()
	e := enc.New(enctest.New())
	// Static context plus a tenant taken from each item's tenant_id attribute.
	s := enc.Spec{
		KeyID:       "alias/my-app-key",
		Context:     map[string]string{"purpose": "pii"},
		ContextFrom: map[string]string{"tenant": "tenant_id"},
	}
	// A repository fills ItemContext from the item; here it is given by hand.
	stored, err := e.SealOne(ctx, enc.SealRequest{Spec: s, Plaintext: []byte("acme's secret"),
		ItemContext: map[string]string{"tenant": "acme"}})
	if err != nil {
		panic(err)
	}
	_, err = e.OpenOne(ctx, enc.OpenRequest{Spec: s, Stored: stored,
		ItemContext: map[string]string{"tenant": "globex"}})
	fmt.Println(errors.Is(err, enc.ErrInvalidCiphertext))
	// Output:
	// true
}

func ExampleEncryptor_Session() {
	ctx := context.Background()
	e := enc.New(enctest.New())
	s := enc.Spec{KeyID: "alias/my-app-key"}

	// Three values sealed together share one data key.
	stored, err := e.Seal(ctx, []enc.SealRequest{
		{Spec: s, Attribute: "ssn", Plaintext: []byte("111-11-1111")},
		{Spec: s, Attribute: "ssn", Plaintext: []byte("222-22-2222")},
		{Spec: s, Attribute: "ssn", Plaintext: []byte("333-33-3333")},
	})
	if err != nil {
		panic(err)
	}

	// Open them one "page" at a time: the session decrypts the data key for
	// the first page and remembers it for the others.
	session := e.Session()
	defer session.Close()
	for _, v := range stored {
		plain, err := session.Open(ctx, []enc.OpenRequest{{Spec: s, Attribute: "ssn", Stored: v}})
		if err != nil {
			panic(err)
		}
		fmt.Println(string(plain[0]))
	}
	st := e.Stats()
	fmt.Println("Decrypt calls:", st.DecryptCalls, "memo hits:", st.CacheHits)
	// Output:
	// 111-11-1111
	// 222-22-2222
	// 333-33-3333
	// Decrypt calls: 1 memo hits: 2
}

// After a rotation the spec names the new key and lists the old one:
// values sealed before still open, new ones are sealed under the new key.
func ExampleSpec_previousKeyIDs() {
	ctx := context.Background()
	e := enc.New(enctest.New())
	old, _ := e.Encrypt(ctx, enc.Spec{KeyID: "key-2024"}, []byte("123-45-6789"))

	rotated := enc.Spec{KeyID: "key-2025", PreviousKeyIDs: []string{"key-2024"}}
	plain, err := e.Decrypt(ctx, rotated, old)
	fmt.Println(string(plain), err)

	other, _ := e.Encrypt(ctx, enc.Spec{KeyID: "key-elsewhere"}, []byte("x"))
	_, err = e.Decrypt(ctx, rotated, other)
	fmt.Println(errors.Is(err, enc.ErrKeyNotAllowed))
	// Output:
	// 123-45-6789 <nil>
	// true
}

// Rewrap brings stored values to their spec's current key: "" means the
// value is current already and needs no write.
func ExampleEncryptor_Rewrap() {
	ctx := context.Background()
	e := enc.New(enctest.New())
	old, _ := e.Encrypt(ctx, enc.Spec{KeyID: "key-2024"}, []byte("123-45-6789"))
	rotated := enc.Spec{KeyID: "key-2025", PreviousKeyIDs: []string{"key-2024"}}
	current, _ := e.Encrypt(ctx, rotated, []byte("987-65-4321"))

	out, errs := e.Rewrap(ctx, []enc.RewrapRequest{
		{Spec: rotated, Attribute: "ssn", Stored: old},
		{Spec: rotated, Attribute: "ssn", Stored: current},
	})
	fmt.Println(errs[0], errs[1], out[0] != "", out[1] == "")

	plain, err := e.Decrypt(ctx, enc.Spec{KeyID: "key-2025"}, out[0])
	fmt.Println(string(plain), err)
	st := e.Stats()
	fmt.Println("ReEncrypt:", st.ReEncryptCalls, "Decrypt:", st.DecryptCalls)
	// Output:
	// <nil> <nil> true true
	// 123-45-6789 <nil>
	// ReEncrypt: 2 Decrypt: 1
}

// A beacon lets items be found by an encrypted value: equal values (here
// after trimming and case folding) have equal beacons, under one KMS HMAC
// key asked once (kms:GenerateMac) while the beacon cache keeps its result.
func ExampleEncryptor_Beacons() {
	ctx := context.Background()
	// enctest stands in for KMS; use kmsx.New() and an HMAC_256 key in a program.
	e := enc.New(enctest.New(), enc.WithBeaconCache(enc.CacheLimits{}))
	email := enc.Beacon{KeyID: "alias/my-beacon-key", Bits: 16, TrimSpace: true, FoldCase: true}
	beacons, err := e.Beacons(ctx, []enc.BeaconRequest{
		{Beacon: email, Attribute: "email_beacon", Plaintext: []byte(" Alice@Example.com")},
		{Beacon: email, Attribute: "email_beacon", Plaintext: []byte("alice@example.com")},
		{Beacon: email, Attribute: "email_beacon", Plaintext: []byte("bob@example.com")},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(beacons[0] == beacons[1], beacons[0] == beacons[2], len(beacons[0]))

	// A lookup computes the beacon of the value it looks for; the cache
	// spares it a second GenerateMac.
	lookup, err := e.Beacons(ctx, []enc.BeaconRequest{{Beacon: email, Attribute: "email_beacon", Plaintext: []byte("ALICE@example.com")}})
	if err != nil {
		panic(err)
	}
	fmt.Println(lookup[0] == beacons[0], "GenerateMac:", e.Stats().GenerateMacCalls)
	// Output:
	// true false 4
	// true GenerateMac: 1
}
