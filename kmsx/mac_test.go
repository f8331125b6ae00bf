package kmsx_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/tracing"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/internal/teltest"
	"github.com/dynoseal/dynoseal/kmsx"
)

// fakeMac is the fake KMS's GenerateMac: HMAC-SHA-256 of msg under a key
// made from the ARN of the KMS key.
func fakeMac(arn string, msg []byte) []byte {
	k := sha256.Sum256([]byte("fake HMAC key " + arn))
	m := hmac.New(sha256.New, k[:])
	m.Write(msg)
	return m.Sum(nil)
}

const macAlias = "alias/beacons"

func emailBeacon(region string) enc.BeaconRequest {
	return enc.BeaconRequest{
		Beacon:    enc.Beacon{KeyID: macAlias, Region: region, Bits: 16, TrimSpace: true, FoldCase: true},
		Attribute: "email_beacon",
		Plaintext: []byte(plaintext),
	}
}

func TestGenerateMacSendsKeyAlgorithmAndMessage(t *testing.T) {
	fake := newFakeKMS(t)
	p := kmsx.NewFromConfig(fake.config())
	var g enc.MacGenerator = p
	mac, err := g.GenerateMac(context.Background(), enc.KeyRef{KeyID: macAlias}, []byte("label"))
	if err != nil {
		t.Fatal(err)
	}
	if want := fakeMac(fakeARN, []byte("label")); !bytes.Equal(mac, want) {
		t.Fatalf("MAC %x, want %x", mac, want)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	// fmt prints maps sorted: this compares the whole request, so an
	// encryption context sent along would show.
	want := fmt.Sprint([]fakeRequest{{Op: "GenerateMac", Body: map[string]any{
		"KeyId": macAlias, "MacAlgorithm": "HMAC_SHA_256", "Message": base64.StdEncoding.EncodeToString([]byte("label")),
	}}})
	if got := fmt.Sprint(fake.requests); got != want {
		t.Fatalf("requests %s, want %s", got, want)
	}
}

// Beacons of one KMS key cost one GenerateMac per call, made by the client
// of the beacon's region.
func TestBeaconsCallGenerateMacInTheKeysRegion(t *testing.T) {
	fake := newFakeKMS(t)
	var clients madeClients
	e := enc.New(kmsx.NewFromConfig(fake.config(), kmsx.WithClientOptions(clients.record)))
	other := emailBeacon("eu-west-1")
	other.Plaintext = []byte("someone else")
	out, err := e.Beacons(context.Background(), []enc.BeaconRequest{emailBeacon("eu-west-1"), other, emailBeacon("eu-west-1")})
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != out[2] || len(out[0]) != 4 {
		t.Fatalf("beacons %q: equal inputs differ, or not 4 hex digits", out)
	}
	if got := [2]int64{int64(fake.calls("GenerateMac")), e.Stats().GenerateMacCalls}; got != [2]int64{1, 1} {
		t.Fatalf("GenerateMac requests and Stats.GenerateMacCalls %v, want 1 for one key", got)
	}
	if got := clients.regions(); !slices.Equal(got, []string{"eu-west-1"}) {
		t.Fatalf("clients made for %v, want one for eu-west-1", got)
	}
}

// madeClients records the options of the KMS clients a provider makes.
type madeClients struct {
	mu   sync.Mutex
	made []*kms.Options
}

func (c *madeClients) record(o *kms.Options) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.made = append(c.made, o)
}

// regions returns the regions of the clients made. The provider sets the
// region after the caller's options, so it is read now, not in record.
func (c *madeClients) regions() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, o := range c.made {
		out = append(out, o.Region)
	}
	return out
}

// apiCode returns the code of the SDK error err wraps, "" when none.
func apiCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

// fieldsOf returns the Op, KeyID and Attribute of the *enc.Error in err.
func fieldsOf(err error) [3]string {
	e, ok := enc.AsError(err)
	if !ok {
		return [3]string{}
	}
	return [3]string{string(e.Op), e.KeyID, e.Attribute}
}

// checkBeaconError fails unless err is the *enc.Error of emailBeacon's
// request, matching sentinel and keeping the SDK error with code.
func checkBeaconError(t *testing.T, err, sentinel error, code string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("err = %v, want %v", err, sentinel)
	}
	if apiCode(err) != code {
		t.Fatalf("the SDK error is not reachable with errors.As: %v", err)
	}
	if got := fieldsOf(err); got != [3]string{string(enc.OpBeacon), macAlias, "email_beacon"} {
		t.Fatalf("*enc.Error Op, KeyID, Attribute = %q", got)
	}
	if strings.Contains(err.Error(), plaintext) {
		t.Fatalf("message %q holds the plaintext", err)
	}
}

func TestGenerateMacErrorCodesMapToSentinels(t *testing.T) {
	cases := []struct {
		code     string
		sentinel error
		attempts int
	}{
		{"NotFoundException", enc.ErrKeyNotFound, 1},
		{"AccessDeniedException", enc.ErrAccessDenied, 1},
		{"DisabledException", enc.ErrKeyDisabled, 1},
		{"KMSInvalidStateException", enc.ErrKeyDisabled, 1},
		{"ThrottlingException", enc.ErrThrottled, 3},
	}
	for _, c := range cases {
		t.Run(c.code, func(t *testing.T) {
			fake := newFakeKMS(t)
			fake.failWith("GenerateMac", c.code)
			_, err := enc.New(kmsx.NewFromConfig(fake.config())).Beacons(context.Background(), []enc.BeaconRequest{emailBeacon("")})
			checkBeaconError(t, err, c.sentinel, c.code)
			if n := fake.calls("GenerateMac"); n != c.attempts {
				t.Fatalf("%d GenerateMac requests, want %d (the SDK's retries)", n, c.attempts)
			}
		})
	}
}

// A symmetric key given as a beacon's key: KMS says InvalidKeyUsageException,
// and the error says which key is wanted.
func TestGenerateMacWithWrongKeyUsageSaysWhatKeyIsNeeded(t *testing.T) {
	fake := newFakeKMS(t)
	fake.failWith("GenerateMac", "InvalidKeyUsageException")
	_, err := enc.New(kmsx.NewFromConfig(fake.config())).Beacons(context.Background(), []enc.BeaconRequest{emailBeacon("")})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"HMAC_256", "GENERATE_VERIFY_MAC", macAlias, "InvalidKeyUsageException"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %s", err, want)
		}
	}
	if apiCode(err) != "InvalidKeyUsageException" {
		t.Fatalf("the SDK error is not reachable: %v", err)
	}
	checkNoSentinel(t, err)
}

// checkNoSentinel fails when err matches one of enc's KMS sentinels.
func checkNoSentinel(t *testing.T, err error) {
	t.Helper()
	for _, s := range []error{enc.ErrKeyNotFound, enc.ErrAccessDenied, enc.ErrKeyDisabled, enc.ErrInvalidCiphertext, enc.ErrThrottled} {
		if errors.Is(err, s) {
			t.Errorf("%v matched %v", err, s)
		}
	}
}

// An API of one's own without GenerateMac still serves data keys; beacons
// fail with errors.ErrUnsupported, and no KMS call is counted.
func TestClientWithoutGenerateMacIsUnsupported(t *testing.T) {
	fake := newFakeKMS(t)
	rec := teltest.New()
	onlyDataKeys := struct{ kmsx.API }{kms.NewFromConfig(fake.config())}
	e := enc.New(kmsx.New(kmsx.WithClient("", onlyDataKeys)), enc.WithObserver(kmsx.Telemetry(rec, rec, nil)))
	_, err := e.Beacons(context.Background(), []enc.BeaconRequest{emailBeacon("")})
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "GenerateMac") {
		t.Fatalf("err = %v, want ErrUnsupported naming GenerateMac", err)
	}
	counted := [3]float64{float64(fake.calls("GenerateMac")), float64(e.Stats().GenerateMacCalls), rec.Sum("dynoseal.kms.calls")}
	if counted != [3]float64{} {
		t.Fatalf("a declined call was made or counted: requests, Stats.GenerateMacCalls, kms.calls = %v", counted)
	}
	if s := rec.Named("dynoseal.kms.GenerateMac"); len(s) != 1 || s[0].Prop("dynoseal.kms.unsupported") != true {
		t.Fatalf("spans %v, want one marked unsupported", s)
	}
	if _, err := e.Encrypt(context.Background(), enc.Spec{KeyID: keyAlias}, []byte(plaintext)); err != nil {
		t.Fatalf("data keys through the same client: %v", err)
	}
}

// beaconsIn computes emailBeacon's beacon once per region, one call each.
func beaconsIn(t *testing.T, e *enc.Encryptor, regions ...string) []string {
	t.Helper()
	var beacons []string
	for _, region := range regions {
		out, err := e.Beacons(context.Background(), []enc.BeaconRequest{emailBeacon(region)})
		if err != nil {
			t.Fatal(err)
		}
		beacons = append(beacons, out...)
	}
	return beacons
}

// checkMacSpans fails unless rec holds one client span per region, in
// order, for GenerateMac calls on macAlias.
func checkMacSpans(t *testing.T, rec *teltest.Recorder, regions ...string) {
	t.Helper()
	var got []string
	for _, s := range rec.Named("dynoseal.kms.GenerateMac") {
		if s.Prop("dynoseal.kms.key_id") != macAlias || s.Prop("dynoseal.kms.operation") != "GenerateMac" || s.Kind != tracing.SpanKindClient {
			t.Errorf("span properties %v, kind %v", s.Props, s.Kind)
		}
		region, _ := s.Prop("dynoseal.kms.region").(string)
		got = append(got, region)
	}
	if !slices.Equal(got, regions) {
		t.Errorf("GenerateMac spans in regions %v, want %v", got, regions)
	}
}

func TestGenerateMacIsTracedAndItsCacheCounted(t *testing.T) {
	fake := newFakeKMS(t)
	rec := teltest.New()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := enc.New(kmsx.NewFromConfig(fake.config()),
		enc.WithObserver(kmsx.Telemetry(rec, rec, log)), enc.WithBeaconCache(enc.CacheLimits{MaxEntries: 1}))
	beacons := beaconsIn(t, e, "eu-west-1", "eu-west-1", "ap-south-1")
	checkMacSpans(t, rec, "eu-west-1", "ap-south-1")
	root := fakeMac(fakeARN, []byte("dynoseal beacon key v1"))
	for _, p := range rec.Problems(append([]string{plaintext, hex.EncodeToString(root), string(root)}, beacons...)...) {
		t.Error(p)
	}
	for _, w := range []struct {
		want float64
		name string
		kv   []string
	}{
		{2, "dynoseal.kms.calls", []string{"operation", "GenerateMac", "outcome", "ok"}},
		{1, "dynoseal.cache.hits", []string{"cache", "beacon"}},
		{2, "dynoseal.cache.misses", []string{"cache", "beacon"}},
		{1, "dynoseal.cache.evictions", []string{"cache", "beacon", "reason", "full"}},
	} {
		if got := rec.Sum(w.name, w.kv...); got != w.want {
			t.Errorf("%s%v = %v, want %v", w.name, w.kv, got, w.want)
		}
	}
	if !strings.Contains(logs.String(), `key evicted from cache" cache=beacon`) {
		t.Errorf("log: %q", logs.String())
	}
}

func TestGenerateMacFailureIsClassifiedInItsSpan(t *testing.T) {
	fake := newFakeKMS(t)
	fake.failWith("GenerateMac", "NotFoundException")
	rec := teltest.New()
	e := enc.New(kmsx.NewFromConfig(fake.config()), enc.WithObserver(kmsx.Telemetry(rec, rec, nil)))
	if _, err := e.Beacons(context.Background(), []enc.BeaconRequest{emailBeacon("")}); !errors.Is(err, enc.ErrKeyNotFound) {
		t.Fatalf("err = %v", err)
	}
	s := rec.Named("dynoseal.kms.GenerateMac")
	if len(s) != 1 || s[0].Status != tracing.SpanStatusError || s[0].Prop("error.type") != "key_not_found" {
		t.Fatalf("spans %v", s)
	}
	if got := rec.Sum("dynoseal.kms.calls", "operation", "GenerateMac", "outcome", "error"); got != 1 {
		t.Fatalf("failed GenerateMac calls counted %v", got)
	}
}
