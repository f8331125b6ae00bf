package kmsx_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/kmsx"
)

// fakeKMS answers the KMS JSON protocol on 127.0.0.1. Unless fail names an
// error code for an operation, GenerateDataKey returns a fixed data key
// "wrapped" by prefixing it, Decrypt unwraps it, and GenerateMac returns
// fakeMac of the key's ARN and the message.
type fakeKMS struct {
	srv *httptest.Server

	mu       sync.Mutex
	fail     map[string]string // operation -> KMS error code
	aliases  map[string]string // alias name -> key ARN
	requests []fakeRequest
}

type fakeRequest struct {
	Op   string
	Body map[string]any
}

var dataKey = bytes.Repeat([]byte{0x5a}, 32)

const wrapPrefix = "wrapped-by-fake-kms:"

func newFakeKMS(t *testing.T) *fakeKMS {
	t.Helper()
	f := &fakeKMS{fail: map[string]string{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	if !strings.HasPrefix(f.srv.URL, "http://127.0.0.1:") {
		t.Fatalf("fake KMS listens on %s, want 127.0.0.1", f.srv.URL)
	}
	return f
}

func (f *fakeKMS) failWith(op, code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[op] = code
}

func (f *fakeKMS) calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if r.Op == op {
			n++
		}
	}
	return n
}

func (f *fakeKMS) serve(w http.ResponseWriter, r *http.Request) {
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "TrentService.")
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	f.mu.Lock()
	f.requests = append(f.requests, fakeRequest{Op: op, Body: body})
	code := f.fail[op]
	f.mu.Unlock()

	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if code != "" {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": "fake KMS says " + code})
		return
	}
	switch op {
	case "GenerateDataKey":
		arn := f.arnOf(body["KeyId"])
		_ = json.NewEncoder(w).Encode(map[string]any{
			"KeyId":          arn,
			"Plaintext":      dataKey,
			"CiphertextBlob": append(append([]byte(wrapPrefix), dataKey...), arn...),
		})
	case "Decrypt":
		arn, ok := sealedBy(body["CiphertextBlob"])
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"__type": "InvalidCiphertextException", "message": "not ours"})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"KeyId": arn, "Plaintext": dataKey})
	case "ReEncrypt":
		src, _ := sealedBy(body["CiphertextBlob"])
		dst := f.arnOf(body["DestinationKeyId"])
		_ = json.NewEncoder(w).Encode(map[string]any{
			"KeyId": dst, "SourceKeyId": src,
			"CiphertextBlob": append(append([]byte(wrapPrefix), dataKey...), dst...),
		})
	case "DescribeKey":
		_ = json.NewEncoder(w).Encode(map[string]any{"KeyMetadata": map[string]any{"KeyId": "x", "Arn": f.arnOf(body["KeyId"])}})
	case "GenerateMac":
		arn := f.arnOf(body["KeyId"])
		b64, _ := body["Message"].(string)
		msg, _ := base64.StdEncoding.DecodeString(b64)
		_ = json.NewEncoder(w).Encode(map[string]any{"KeyId": arn, "MacAlgorithm": body["MacAlgorithm"], "Mac": fakeMac(arn, msg)})
	default:
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": "UnsupportedOperationException", "message": op})
	}
}

const (
	arnPrefix = "arn:aws:kms:us-east-1:111122223333:key/"
	fakeARN   = arnPrefix + "fake"
)

// arnOf returns the key ARN a key ID names; aliases not pointed anywhere
// with point name the key "fake".
func (f *fakeKMS) arnOf(id any) string {
	s, _ := id.(string)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.aliases[s] != "":
		return f.aliases[s]
	case strings.HasPrefix(s, "alias/") || s == "":
		return fakeARN
	case strings.HasPrefix(s, "arn:"):
		return s
	}
	return arnPrefix + s
}

func (f *fakeKMS) point(alias, arn string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.aliases == nil {
		f.aliases = map[string]string{}
	}
	f.aliases[alias] = arn
}

// sealedBy returns the key ARN a fake blob was made under.
func sealedBy(b64 any) (string, bool) {
	s, _ := b64.(string)
	blob, _ := base64.StdEncoding.DecodeString(s)
	if !bytes.HasPrefix(blob, []byte(wrapPrefix)) || len(blob) < len(wrapPrefix)+len(dataKey) {
		return "", false
	}
	arn := string(blob[len(wrapPrefix)+len(dataKey):])
	if arn == "" {
		arn = fakeARN
	}
	return arn, true
}

// config points a real SDK configuration at the fake, with anonymous
// credentials and three quick attempts per call.
func (f *fakeKMS) config() aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  aws.AnonymousCredentials{},
		BaseEndpoint: aws.String(f.srv.URL),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 3
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
				o.RateLimiter = ratelimit.None
			})
		},
	}
}

const (
	plaintext = "PLAINTEXT-123-45-6789"
	keyAlias  = "alias/my-app-key"
)

func TestKMSErrorCodesMapToSentinels(t *testing.T) {
	cases := []struct {
		code     string
		op       string // the KMS operation that fails
		sentinel error
		attempts int
	}{
		{"NotFoundException", "GenerateDataKey", enc.ErrKeyNotFound, 1},
		{"NotFoundException", "Decrypt", enc.ErrKeyNotFound, 1},
		{"AccessDeniedException", "GenerateDataKey", enc.ErrAccessDenied, 1},
		{"AccessDeniedException", "Decrypt", enc.ErrAccessDenied, 1},
		{"DisabledException", "GenerateDataKey", enc.ErrKeyDisabled, 1},
		{"DisabledException", "Decrypt", enc.ErrKeyDisabled, 1},
		{"KMSInvalidStateException", "GenerateDataKey", enc.ErrKeyDisabled, 1},
		{"KMSInvalidStateException", "Decrypt", enc.ErrKeyDisabled, 1},
		{"InvalidCiphertextException", "Decrypt", enc.ErrInvalidCiphertext, 1},
		{"IncorrectKeyException", "Decrypt", enc.ErrInvalidCiphertext, 1},
		{"ThrottlingException", "GenerateDataKey", enc.ErrThrottled, 3},
		{"ThrottlingException", "Decrypt", enc.ErrThrottled, 3},
	}
	for _, c := range cases {
		t.Run(c.op+"/"+c.code, func(t *testing.T) {
			ctx := context.Background()
			fake := newFakeKMS(t)
			e := enc.New(kmsx.NewFromConfig(fake.config()))
			spec := enc.Spec{KeyID: keyAlias, Context: map[string]string{"tenant": "acme"}}

			var stored string
			var err error
			if c.op == "GenerateDataKey" {
				fake.failWith("GenerateDataKey", c.code)
				_, err = e.Seal(ctx, []enc.SealRequest{{Spec: spec, Attribute: "ssn", Plaintext: []byte(plaintext)}})
			} else {
				if stored, err = e.Encrypt(ctx, spec, []byte(plaintext)); err != nil {
					t.Fatal(err)
				}
				fake.failWith("Decrypt", c.code)
				_, err = e.Open(ctx, []enc.OpenRequest{{Spec: spec, Attribute: "ssn", Stored: stored}})
			}

			if !errors.Is(err, c.sentinel) {
				t.Fatalf("err = %v, want %v", err, c.sentinel)
			}
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != c.code {
				t.Fatalf("the SDK error is not reachable with errors.As: %v", err)
			}
			e2, ok := enc.AsError(err)
			if !ok {
				t.Fatalf("not an *enc.Error: %T", err)
			}
			wantOp := enc.OpEncrypt
			if c.op == "Decrypt" {
				wantOp = enc.OpDecrypt
			}
			if e2.Op != wantOp || e2.Attribute != "ssn" || e2.KeyID != keyAlias {
				t.Fatalf("*enc.Error = {Op:%s Attribute:%s KeyID:%s}", e2.Op, e2.Attribute, e2.KeyID)
			}
			msg := err.Error()
			for _, want := range []string{string(wantOp), "ssn", keyAlias, c.sentinel.Error()} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
			for _, secret := range []string{plaintext, string(dataKey), base64.StdEncoding.EncodeToString(dataKey), strings.TrimPrefix(stored, enc.Prefix)} {
				if secret != "" && strings.Contains(msg, secret) {
					t.Errorf("message %q contains plaintext or key material", msg)
				}
			}
			if n := fake.calls(c.op); n != c.attempts {
				t.Fatalf("%d %s requests, want %d (the SDK's retries)", n, c.op, c.attempts)
			}
		})
	}
}

func TestUnmappedKMSErrorKeepsTheSDKError(t *testing.T) {
	fake := newFakeKMS(t)
	fake.failWith("GenerateDataKey", "InvalidKeyUsageException")
	_, err := enc.New(kmsx.NewFromConfig(fake.config())).Encrypt(context.Background(), enc.Spec{KeyID: keyAlias}, []byte(plaintext))
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidKeyUsageException" {
		t.Fatalf("err = %v", err)
	}
	for _, s := range []error{enc.ErrKeyNotFound, enc.ErrAccessDenied, enc.ErrKeyDisabled, enc.ErrInvalidCiphertext, enc.ErrThrottled} {
		if errors.Is(err, s) {
			t.Fatalf("an unmapped code matched %v", s)
		}
	}
}

func TestProviderSendsKeyContextAndSpec(t *testing.T) {
	ctx := context.Background()
	fake := newFakeKMS(t)
	e := enc.New(kmsx.NewFromConfig(fake.config()))
	spec := enc.Spec{KeyID: keyAlias, Context: map[string]string{"tenant": "acme", "purpose": "pii"}}
	stored, err := e.Encrypt(ctx, spec, []byte(plaintext))
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Decrypt(ctx, spec, stored)
	if err != nil || string(got) != plaintext {
		t.Fatalf("round trip through the real client: %q, %v", got, err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.requests) != 2 {
		t.Fatalf("%d requests, want GenerateDataKey and Decrypt", len(fake.requests))
	}
	gen, dec := fake.requests[0].Body, fake.requests[1].Body
	if gen["KeyId"] != keyAlias || gen["KeySpec"] != "AES_256" {
		t.Fatalf("GenerateDataKey request %v", gen)
	}
	if dec["KeyId"] != keyAlias {
		t.Fatalf("Decrypt does not name the spec's key: %v", dec)
	}
	for _, body := range []map[string]any{gen, dec} {
		ctxMap, _ := body["EncryptionContext"].(map[string]any)
		if ctxMap["tenant"] != "acme" || ctxMap["purpose"] != "pii" || len(ctxMap) != 2 {
			t.Fatalf("encryption context sent as %v", body["EncryptionContext"])
		}
	}
}

func TestModeErrorsReadLikeTheReferenceAndCallNoKMS(t *testing.T) {
	ctx := context.Background()
	fake := newFakeKMS(t)
	e := enc.New(kmsx.NewFromConfig(fake.config()))
	_, err := e.Seal(ctx, []enc.SealRequest{{Spec: enc.Spec{KeyID: keyAlias, Mode: enc.ReadOnly}, Attribute: "ssn", Plaintext: []byte(plaintext)}})
	if !errors.Is(err, enc.ErrReadOnly) || !strings.Contains(err.Error(), "cannot encrypt in ReadOnly mode") || !strings.Contains(err.Error(), "ssn") {
		t.Fatalf("ReadOnly: %v", err)
	}
	stored, err := e.Encrypt(ctx, enc.Spec{KeyID: keyAlias}, []byte(plaintext))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Open(ctx, []enc.OpenRequest{{Spec: enc.Spec{KeyID: keyAlias, Mode: enc.WriteOnly}, Attribute: "ssn", Stored: stored}})
	if !errors.Is(err, enc.ErrWriteOnly) || !strings.Contains(err.Error(), "cannot decrypt in WriteOnly mode") {
		t.Fatalf("WriteOnly: %v", err)
	}
	if fake.calls("GenerateDataKey") != 1 || fake.calls("Decrypt") != 0 {
		t.Fatalf("mode errors reached KMS: %+v", fake.requests)
	}
	if e, ok := enc.AsError(err); !ok || e.Op != enc.OpDecrypt || e.KeyID != keyAlias || e.Attribute != "ssn" {
		t.Fatalf("WriteOnly error fields: %+v", e)
	}
}

func TestOneLazyClientPerRegion(t *testing.T) {
	ctx := context.Background()
	fake := newFakeKMS(t)
	var mu sync.Mutex
	var created []*kms.Options
	// The provider sets a spec's region after the caller's options, so the
	// region is read once the client is made, not when this option runs.
	record := func(o *kms.Options) {
		mu.Lock()
		defer mu.Unlock()
		created = append(created, o)
	}
	clients := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var regions []string
		for _, o := range created {
			regions = append(regions, o.Region)
		}
		return regions
	}
	e := enc.New(kmsx.NewFromConfig(fake.config(), kmsx.WithClientOptions(record)))
	if got := clients(); len(got) != 0 {
		t.Fatalf("clients made before the first call: %v", got)
	}
	west := enc.Spec{KeyID: keyAlias, Region: "eu-west-1"}
	south := enc.Spec{KeyID: keyAlias, Region: "ap-south-1"}
	if _, err := e.Encrypt(ctx, west, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if got := clients(); !slices.Equal(got, []string{"eu-west-1"}) {
		t.Fatalf("after a call in eu-west-1: clients %v", got)
	}
	// Many concurrent calls in both regions share the two clients.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			spec := west
			if i%2 == 1 {
				spec = south
			}
			stored, err := e.Encrypt(ctx, spec, []byte("b"))
			if err == nil {
				_, err = e.Decrypt(ctx, spec, stored)
			}
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got := clients()
	slices.Sort(got)
	if !slices.Equal(got, []string{"ap-south-1", "eu-west-1"}) {
		t.Fatalf("clients %v, want one per region", got)
	}
	// A spec without a region uses the configuration's.
	if _, err := e.Encrypt(ctx, enc.Spec{KeyID: keyAlias}, []byte("c")); err != nil {
		t.Fatal(err)
	}
	if got := clients(); len(got) != 3 || got[2] != "us-east-1" {
		t.Fatalf("clients %v, want a third in the configuration's region", got)
	}
}

func TestGivenClientIsUsedForItsRegion(t *testing.T) {
	fake := newFakeKMS(t)
	given := kms.NewFromConfig(fake.config())
	var made []string
	p := kmsx.New(kmsx.WithClient("eu-west-1", given), kmsx.WithClientOptions(func(o *kms.Options) { made = append(made, o.Region) }))
	if _, err := enc.New(p).Encrypt(context.Background(), enc.Spec{KeyID: keyAlias, Region: "eu-west-1"}, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if len(made) != 0 || fake.calls("GenerateDataKey") != 1 {
		t.Fatalf("provider made clients %v instead of using the given one", made)
	}
}

// A spec's region wins over a region set by the caller's client options.
func TestSpecRegionWinsOverClientOptions(t *testing.T) {
	fake := newFakeKMS(t)
	var made []*kms.Options
	p := kmsx.NewFromConfig(fake.config(), kmsx.WithClientOptions(func(o *kms.Options) {
		o.Region = "sa-east-1"
		made = append(made, o)
	}))
	if _, err := enc.New(p).Encrypt(context.Background(), enc.Spec{KeyID: keyAlias, Region: "eu-west-1"}, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if len(made) != 1 {
		t.Fatalf("%d clients made, want 1", len(made))
	}
	if made[0].Region != "eu-west-1" {
		t.Fatalf("client made for region %q, want the spec's eu-west-1", made[0].Region)
	}
}

// A failed load of the default configuration is not remembered: the next
// call loads again.
func TestFailedConfigLoadIsTriedAgain(t *testing.T) {
	fake := newFakeKMS(t)
	loads := 0
	p := kmsx.New(kmsx.WithLoadOptions(func(o *config.LoadOptions) error {
		loads++
		if loads == 1 {
			return errors.New("no credentials yet")
		}
		o.Region = "us-east-1"
		o.Credentials = aws.AnonymousCredentials{}
		o.BaseEndpoint = fake.srv.URL
		return nil
	}))
	e := enc.New(p)
	if _, err := e.Encrypt(context.Background(), enc.Spec{KeyID: keyAlias}, []byte("a")); err == nil || !strings.Contains(err.Error(), "no credentials yet") {
		t.Fatalf("first call: %v, want the load error", err)
	}
	if _, err := e.Encrypt(context.Background(), enc.Spec{KeyID: keyAlias}, []byte("a")); err != nil {
		t.Fatalf("second call: %v", err)
	}
	if loads != 2 {
		t.Fatalf("configuration loaded %d times, want 2", loads)
	}
}

// A slow configuration load holds up only callers that need it, each no
// longer than its own context allows.
func TestSlowConfigLoadHonoursCallersDeadlines(t *testing.T) {
	fake := newFakeKMS(t)
	release, loading := make(chan struct{}), make(chan struct{}, 1)
	p := kmsx.New(
		kmsx.WithLoadOptions(func(o *config.LoadOptions) error {
			loading <- struct{}{}
			<-release // an instance-metadata lookup that hangs
			o.Region = "us-east-1"
			o.Credentials = aws.AnonymousCredentials{}
			o.BaseEndpoint = fake.srv.URL
			return nil
		}),
		kmsx.WithClient("eu-west-1", kms.NewFromConfig(fake.config(), func(o *kms.Options) { o.Region = "eu-west-1" })),
	)
	e := enc.New(p)
	slow := make(chan error, 1)
	go func() {
		_, err := e.Encrypt(context.Background(), enc.Spec{KeyID: keyAlias}, []byte("a"))
		slow <- err
	}()
	<-loading

	// Both calls run beside the test, which gives up on them after a few
	// seconds, so a regression fails instead of hanging.
	within := func(what string, call func() error) error {
		t.Helper()
		got := make(chan error, 1)
		go func() { got <- call() }()
		select {
		case err := <-got:
			return err
		case <-time.After(5 * time.Second):
			close(release)
			t.Fatalf("%s is still blocked by the configuration load", what)
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	err := within("a caller with a deadline", func() error {
		_, err := e.Encrypt(ctx, enc.Spec{KeyID: keyAlias}, []byte("b"))
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller with a deadline: %v, want DeadlineExceeded", err)
	}
	// A region with a client of its own needs no configuration at all.
	err = within("a region with its own client", func() error {
		_, err := e.Encrypt(context.Background(), enc.Spec{KeyID: keyAlias, Region: "eu-west-1"}, []byte("c"))
		return err
	})
	if err != nil {
		t.Fatalf("given client blocked by the load: %v", err)
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
}
