package enc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/smithy-go/tracing"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/internal/teltest"
	"github.com/dynoseal/dynoseal/kmsx"
)

const secretText = "4111-1111-1111-1111"

func observed(t *testing.T, opts ...enc.Option) (*enc.Encryptor, *enctest.Provider, *teltest.Recorder, *bytes.Buffer) {
	t.Helper()
	rec := teltest.New()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	keys := enctest.New()
	all := append([]enc.Option{enc.WithObserver(kmsx.Telemetry(rec, rec, log))}, opts...)
	return enc.New(keys, all...), keys, rec, &logs
}

// checkClean fails on each problem of the recorded spans.
func checkClean(t *testing.T, rec *teltest.Recorder, secrets ...string) {
	t.Helper()
	for _, p := range rec.Problems(secrets...) {
		t.Error(p)
	}
}

// wantSum fails unless metric name with attributes kv summed to want.
func wantSum(t *testing.T, rec *teltest.Recorder, want float64, name string, kv ...string) {
	t.Helper()
	if got := rec.Sum(name, kv...); got != want {
		t.Errorf("%s%v = %v, want %v", name, kv, got, want)
	}
}

func TestKMSCallsAreTracedAndCounted(t *testing.T) {
	ctx := context.Background()
	e, _, rec, _ := observed(t)
	spec := enc.Spec{KeyID: "alias/cards", Region: "eu-west-1", Context: map[string]string{"app": "shop"}}
	sealed, err := e.Seal(ctx, []enc.SealRequest{{Spec: spec, Plaintext: []byte(secretText)}, {Spec: spec, Plaintext: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Decrypt(ctx, spec, sealed[0]); err != nil {
		t.Fatal(err)
	}
	gen, dec := rec.Named("dynoseal.kms.GenerateDataKey"), rec.Named("dynoseal.kms.Decrypt")
	if len(gen) != 1 || len(dec) != 1 {
		t.Fatalf("%d GenerateDataKey and %d Decrypt spans, want one each", len(gen), len(dec))
	}
	for _, s := range append(gen, dec...) {
		if s.Prop("dynoseal.kms.key_id") != "alias/cards" || s.Prop("dynoseal.kms.region") != "eu-west-1" || s.Kind != tracing.SpanKindClient {
			t.Errorf("span %s: properties %v, kind %v", s.Name(), s.Props, s.Kind)
		}
	}
	checkClean(t, rec, secretText, sealed[0], "shop")
	wantSum(t, rec, 1, "dynoseal.kms.calls", "operation", "GenerateDataKey", "outcome", "ok")
	wantSum(t, rec, 1, "dynoseal.kms.calls", "operation", "Decrypt", "outcome", "ok")
	if rec.Sum("dynoseal.kms.duration") <= 0 {
		t.Error("no KMS duration recorded")
	}
}

func TestKMSFailureIsClassifiedAndThrottlingLogged(t *testing.T) {
	e, keys, rec, logs := observed(t)
	keys.Fail = func(string, enc.KeyRef) error { return fmt.Errorf("kms said: %w", enc.ErrThrottled) }
	if _, err := e.Encrypt(context.Background(), enc.Spec{KeyID: "k"}, []byte(secretText)); !errors.Is(err, enc.ErrThrottled) {
		t.Fatalf("err = %v", err)
	}
	s := rec.Named("dynoseal.kms.GenerateDataKey")
	if len(s) != 1 || s[0].Status != tracing.SpanStatusError || s[0].Prop("error.type") != "throttled" {
		t.Fatalf("spans %v", s)
	}
	wantSum(t, rec, 1, "dynoseal.kms.calls", "outcome", "error")
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "KMS request throttled") {
		t.Errorf("log: %q", logs.String())
	}
}

func TestCacheHitsMissesAndEvictionsAreCounted(t *testing.T) {
	ctx := context.Background()
	e, _, rec, logs := observed(t, enc.WithCache(enc.CacheLimits{MaxEntries: 1}))
	a, b := enc.Spec{KeyID: "a"}, enc.Spec{KeyID: "b"}
	for _, s := range []enc.Spec{a, a, b} {
		if _, err := e.Encrypt(ctx, s, []byte(secretText)); err != nil {
			t.Fatal(err)
		}
	}
	wantSum(t, rec, 1, "dynoseal.cache.hits", "cache", "encrypt")
	wantSum(t, rec, 2, "dynoseal.cache.misses", "cache", "encrypt")
	wantSum(t, rec, 1, "dynoseal.cache.evictions", "cache", "encrypt", "reason", "full")
	if !strings.Contains(logs.String(), "level=DEBUG") || !strings.Contains(logs.String(), "evicted") {
		t.Errorf("log: %q", logs.String())
	}
	if st := e.Stats(); st.CacheHits != 1 || st.CacheMisses != 2 {
		t.Errorf("Stats %+v disagree", st)
	}
}

func TestNoTelemetryByDefault(t *testing.T) {
	// An encryptor with a nil logger and providers works as one without.
	e := enc.New(enctest.New(), enc.WithObserver(kmsx.Telemetry(nil, nil, nil)))
	if _, err := e.Encrypt(context.Background(), enc.Spec{KeyID: "k"}, []byte("v")); err != nil {
		t.Fatal(err)
	}
}
