package integration

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/dynoseal/dynoseal/dynotest"
	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/kmsx"
)

// emailBeacon is the beacon of an e-mail address under the KMS HMAC key keyID.
func emailBeacon(keyID, email string) enc.BeaconRequest {
	return enc.BeaconRequest{
		Beacon:    enc.Beacon{KeyID: keyID, Bits: 64, TrimSpace: true, FoldCase: true},
		Attribute: "email_beacon",
		Plaintext: []byte(email),
	}
}

// beaconsOf computes beacons with e, failing the test on error.
func beaconsOf(t *testing.T, e *enc.Encryptor, reqs ...enc.BeaconRequest) []string {
	t.Helper()
	out, err := e.Beacons(context.Background(), reqs)
	if err != nil {
		t.Fatalf("beacons: %v", err)
	}
	return out
}

func hmacSHA256(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// handBeacon is the beacon of an attribute without item context, derived
// as docs and enc/beacon.go describe it from a root key that the test got
// from KMS itself.
func handBeacon(root []byte, attr, normalised string) string {
	key := hmacSHA256(root, []byte("attribute"), binary.BigEndian.AppendUint32(nil, uint32(len(attr))), []byte(attr))
	return fmt.Sprintf("%016x", binary.BigEndian.Uint64(hmacSHA256(key, []byte(normalised))))
}

// rootFromKMS asks KMS directly, without kmsx, for the MAC beacon keys
// are derived from.
func rootFromKMS(t *testing.T, env *dynotest.Env, keyID string) []byte {
	t.Helper()
	out, err := env.KMS.GenerateMac(context.Background(), &kms.GenerateMacInput{
		KeyId: aws.String(keyID), MacAlgorithm: kmstypes.MacAlgorithmSpecHmacSha256, Message: []byte("dynoseal beacon key v1"),
	})
	if err != nil {
		t.Fatalf("GenerateMac with the SDK: %v", err)
	}
	return out.Mac
}

// Beacons under a KMS HMAC key: equal for equal (normalised) inputs, by
// alias or by key ID, in this process and in another; and what a
// derivation by hand from the emulator's own MAC gives.
func TestKMSMacBeacons(t *testing.T) {
	env := dynotest.New(t)
	keyID, alias := env.MacKey(t)
	e := env.Encryptor()
	got := beaconsOf(t, e, emailBeacon(alias, " Alice@Example.com"), emailBeacon(alias, "alice@example.com"),
		emailBeacon(alias, "bob@example.com"), emailBeacon(keyID, "ALICE@example.COM"))
	if got[0] != got[1] || got[0] != got[3] || got[0] == got[2] {
		t.Fatalf("beacons %q: want 0, 1 and 3 equal, 2 different", got)
	}
	if n := e.Stats().GenerateMacCalls; n != 2 {
		t.Fatalf("%d GenerateMac calls, want one for the alias and one for the key ID", n)
	}
	if again := beaconsOf(t, env.Encryptor(), emailBeacon(alias, "alice@example.com")); again[0] != got[0] {
		t.Fatalf("another encryptor: beacon %s, want %s", again[0], got[0])
	}
	if want := handBeacon(rootFromKMS(t, env, alias), "email_beacon", "ALICE@EXAMPLE.COM"); got[0] != want {
		t.Fatalf("beacon %s, by hand from the emulator's MAC %s", got[0], want)
	}
}

// With the cache on, concurrent calls share one GenerateMac.
func TestKMSMacBeaconCacheCallsOnce(t *testing.T) {
	env := dynotest.New(t)
	_, alias := env.MacKey(t)
	want := beaconsOf(t, env.Encryptor(), emailBeacon(alias, "alice@example.com"))
	e := enc.New(kmsx.NewFromConfig(env.Config), enc.WithCache(enc.CacheLimits{}))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- beaconLoop(e, alias, want, 5)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := e.Stats().GenerateMacCalls; n != 1 {
		t.Fatalf("%d GenerateMac calls for 40 calls with the cache on, want 1", n)
	}
}

// beaconLoop computes alice's beacon n times and returns the first error
// or wrong beacon.
func beaconLoop(e *enc.Encryptor, alias string, want []string, n int) error {
	for range n {
		got, err := e.Beacons(context.Background(), []enc.BeaconRequest{emailBeacon(alias, "alice@example.com")})
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("beacon %q, want %q", got, want)
		}
	}
	return nil
}

// apiErrorCode returns the code of the SDK error err wraps, "" when none.
func apiErrorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

// beaconError computes one beacon under keyID and returns its error, which
// must be the *enc.Error of that request.
func beaconError(t *testing.T, env *dynotest.Env, keyID string) error {
	t.Helper()
	_, err := env.Encryptor().Beacons(context.Background(), []enc.BeaconRequest{emailBeacon(keyID, "alice@example.com")})
	if err == nil {
		return nil
	}
	if e, ok := enc.AsError(err); !ok || e.Op != enc.OpBeacon || e.KeyID != keyID {
		t.Fatalf("error %v is not the beacon request's *enc.Error", err)
	}
	if strings.Contains(strings.ToLower(err.Error()), "alice") {
		t.Fatalf("error %q holds the plaintext", err)
	}
	return err
}

// A symmetric encryption key given as a beacon's key is refused with an
// error that says what key is needed.
func TestKMSMacSymmetricKeyIsRefused(t *testing.T) {
	env := dynotest.New(t)
	keyID, alias := env.Key(t)
	var errs []error
	for _, id := range []string{keyID, alias} {
		err := beaconError(t, env, id)
		if err == nil {
			t.Fatalf("%s: GenerateMac with a symmetric key succeeded", id)
		}
		errs = append(errs, err)
	}
	if env.Backend == "strict" && apiErrorCode(errs[0]) == "ValidationException" {
		t.Skipf("local-kms refuses GenerateMac with a symmetric key with ValidationException (%q), where AWS "+
			"(and moto) answer InvalidKeyUsageException, which kmsx turns into the error naming HMAC_256 and "+
			"GENERATE_VERIFY_MAC; that error cannot be checked on this backend", errs[0])
	}
	for _, err := range errs {
		checkSaysHMACKey(t, err)
	}
}

// checkSaysHMACKey fails unless err says that an HMAC_256 key is needed
// and keeps the SDK's InvalidKeyUsageException.
func checkSaysHMACKey(t *testing.T, err error) {
	t.Helper()
	for _, want := range []string{"HMAC_256", "GENERATE_VERIFY_MAC"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %s", err, want)
		}
	}
	if code := apiErrorCode(err); code != "InvalidKeyUsageException" {
		t.Errorf("SDK error code %q, want InvalidKeyUsageException", code)
	}
}

func TestKMSMacUnknownKeyIsNotFound(t *testing.T) {
	env := dynotest.New(t)
	for _, id := range []string{"alias/" + dynotest.UniqueName(t, "missing"), "0b1c2d3e-0000-4000-8000-000000000000"} {
		if err := beaconError(t, env, id); !errors.Is(err, enc.ErrKeyNotFound) {
			t.Fatalf("%s: err = %v, want ErrKeyNotFound", id, err)
		}
	}
}

func TestKMSMacDisabledKey(t *testing.T) {
	env := dynotest.New(t)
	keyID, alias := env.MacKey(t)
	ctx := context.Background()
	if _, err := env.KMS.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(keyID)}); err != nil {
		t.Fatalf("disable the HMAC key: %v", err)
	}
	t.Cleanup(func() { _, _ = env.KMS.EnableKey(context.Background(), &kms.EnableKeyInput{KeyId: aws.String(keyID)}) })
	err := beaconError(t, env, alias)
	if err == nil && env.Backend == "moto" {
		t.Skip("moto records the key state but still answers GenerateMac for a disabled HMAC key (its " +
			"generate_mac checks only the key's usage and spec); AWS and local-kms answer DisabledException")
	}
	if !errors.Is(err, enc.ErrKeyDisabled) || apiErrorCode(err) != "DisabledException" {
		t.Fatalf("err = %v, want ErrKeyDisabled from DisabledException", err)
	}
}
