package pagetoken

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// keyTypes holds one value of each type a key can have (S, N, B),
// including the edge cases: empty strings and bytes, numbers that float64
// would change.
func keyTypes() map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"s":       &types.AttributeValueMemberS{Value: "USER#1 ü/+?&="},
		"empty":   &types.AttributeValueMemberS{Value: ""},
		"n":       &types.AttributeValueMemberN{Value: "12345678901234567890.000000000000000001"},
		"neg":     &types.AttributeValueMemberN{Value: "-1E-130"},
		"b":       &types.AttributeValueMemberB{Value: []byte{0, 0xff, 1}},
		"b empty": &types.AttributeValueMemberB{Value: []byte{}},
		"":        &types.AttributeValueMemberS{Value: "empty name"},
	}
}

func TestTokenRoundTripsEveryKeyType(t *testing.T) {
	b := NewScope([]byte("query"), []byte("t"))
	key := keyTypes()
	token, err := Encode(b, key)
	if err != nil {
		t.Fatal(err)
	}
	if url.QueryEscape(token) != token || strings.ContainsAny(token, "=+/") {
		t.Fatalf("token %q is not URL-safe", token)
	}
	got, err := Decode(token, b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, key) {
		t.Fatalf("round trip changed the key:\n got %#v\nwant %#v", got, key)
	}
	again, _ := Encode(b, got)
	if again != token {
		t.Fatal("equal keys encode differently")
	}
	for name, v := range key {
		single := map[string]types.AttributeValue{name: v}
		tok, err := Encode(b, single)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := Decode(tok, b); err != nil || !reflect.DeepEqual(got, single) {
			t.Fatalf("%s: %#v, %v", name, got, err)
		}
	}
}

func TestTokenRejectsDamage(t *testing.T) {
	b := NewScope([]byte("query"), []byte("t"))
	token, err := Encode(b, keyTypes())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(token)
	enc := base64.RawURLEncoding.EncodeToString
	// craft makes a token with a valid check around any key bytes, to reach
	// the decoder's own checks.
	craft := func(key ...byte) string {
		c := check(b, key)
		return enc(append(append([]byte{tokenVersion}, c[:]...), key...))
	}
	bad := map[string]string{
		"not base64":      "a b",
		"line breaks":     token[:10] + "\n" + token[10:],
		"std base64":      base64.StdEncoding.EncodeToString(raw),
		"other binding":   mustToken(t, NewScope([]byte("scan"), []byte("t")), keyTypes()),
		"other version":   enc(append([]byte{1}, raw[1:]...)),
		"trailing bytes":  enc(append(append([]byte{}, raw...), 0)),
		"check of a key":  enc(append(append([]byte{}, raw[:1+checkSize]...), 1, 1, 'a', tagS, 0)),
		"unknown tag":     craft(1, 1, 'a', 99, 0),
		"old list tag":    craft(1, 1, 'a', 9, 0),
		"empty key":       craft(0),
		"huge count":      craft(0xff, 0xff, 0xff, 0xff, 0x0f),
		"names unordered": craft(2, 1, 'b', tagS, 0, 1, 'a', tagS, 0),
		"names repeated":  craft(2, 1, 'a', tagS, 0, 1, 'a', tagS, 0),
		"crafted trailer": craft(append(append([]byte{}, raw[1+checkSize:]...), 0)...),
		"too long":        strings.Repeat("A", maxTokenLen+1),
	}
	for i := 1; i < len(raw); i++ {
		bad[fmt.Sprintf("truncated to %d bytes", i)] = enc(raw[:i])
	}
	// Any one bit changed, in the bytes or in the text, is refused: the
	// check covers the key, not only the query.
	for i := range raw {
		for bit := range 8 {
			flipped := append([]byte{}, raw...)
			flipped[i] ^= 1 << bit
			bad[fmt.Sprintf("byte %d bit %d flipped", i, bit)] = enc(flipped)
		}
	}
	for i := range token {
		for bit := range 8 {
			flipped := []byte(token)
			flipped[i] ^= 1 << bit
			bad[fmt.Sprintf("character %d bit %d flipped", i, bit)] = string(flipped)
		}
	}
	for name, tok := range bad {
		if _, err := Decode(tok, b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

// A key changed by one bit (USER#123 to USER#122) is refused, however
// valid the changed key is.
func TestTokenCheckCoversTheKey(t *testing.T) {
	b := NewScope([]byte("query"), []byte("users"))
	token := mustToken(t, b, map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "USER#123"}})
	raw, _ := base64.RawURLEncoding.DecodeString(token)
	raw[len(raw)-1] ^= 1 // '3' -> '2'
	damaged := base64.RawURLEncoding.EncodeToString(raw)
	if key, err := Decode(damaged, b); !errors.Is(err, ErrInvalid) {
		t.Fatalf("damaged token decoded to %v, %v", key, err)
	}
}

func mustToken(t *testing.T, b Scope, key map[string]types.AttributeValue) string {
	t.Helper()
	tok, err := Encode(b, key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTokenRefusesValuesItCannotEncode(t *testing.T) {
	for _, v := range []types.AttributeValue{&types.UnknownUnionMember{Tag: "X"}, &types.AttributeValueMemberBOOL{Value: true},
		&types.AttributeValueMemberL{}, &types.AttributeValueMemberSS{Value: []string{"a"}}} {
		_, err := Encode(Scope{}, map[string]types.AttributeValue{"k": v})
		if err == nil || !strings.Contains(err.Error(), `"k"`) {
			t.Fatalf("%T: err = %v", v, err)
		}
	}
}

// FuzzDecodeToken: no input panics or allocates without bound, and whatever
// decodes encodes back to the same token (one encoding per key).
func FuzzDecodeToken(f *testing.F) {
	b := NewScope([]byte("fuzz"))
	tok, _ := Encode(b, keyTypes())
	f.Add(tok)
	f.Add("")
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, token string) {
		key, err := Decode(token, b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		again, err := Encode(b, key)
		if err != nil {
			t.Fatal(err)
		}
		if again != token {
			t.Fatalf("decoded %q but encodes as %q", token, again)
		}
	})
}

// FuzzDecodeTokenKey fuzzes the key bytes behind a valid check, which
// random tokens almost never get past: the decoder must stay as strict and
// bounded as FuzzDecodeToken requires.
func FuzzDecodeTokenKey(f *testing.F) {
	b := NewScope([]byte("fuzz"))
	key, _ := AppendKey(nil, keyTypes())
	f.Add(key)
	f.Add([]byte{})
	f.Add([]byte{1, 1, 'a', tagB, 1, 7})
	f.Fuzz(func(t *testing.T, key []byte) {
		c := check(b, key)
		token := base64.RawURLEncoding.EncodeToString(append(append([]byte{tokenVersion}, c[:]...), key...))
		decoded, err := Decode(token, b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		again, err := Encode(b, decoded)
		if err != nil {
			t.Fatal(err)
		}
		if again != token {
			t.Fatalf("decoded %q but encodes as %q", token, again)
		}
	})
}
