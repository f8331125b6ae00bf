package integration

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/kmsx"
	"github.com/dynoseal/dynoseal/repo"
	"github.com/dynoseal/dynoseal/tests/otelsmithy"
)

// TestTelemetry wires OpenTelemetry into a repository and its encryptor and
// checks that a Put and a Get make their spans, with the KMS calls nested
// in them, that no attribute holds the value, and that the counters move.
func TestTelemetry(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)

	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = tp.Shutdown(ctx); _ = mp.Shutdown(ctx) })
	tracer, meter := otelsmithy.TracerProvider(tp), otelsmithy.MeterProvider(mp)

	e := enc.New(kmsx.NewFromConfig(f.env.Config), enc.WithObserver(kmsx.Telemetry(tracer, meter, nil)))
	r := users(t, f, repo.WithEncryptor(e), repo.WithTracerProvider(tracer), repo.WithMeterProvider(meter))

	const ssn = "123-45-6789"
	if err := r.Put(ctx, User{PK: "USER#1", Email: "a@example.com", SSN: field.NewEncrypted(ssn)}); err != nil {
		t.Fatal(err)
	}
	got, err := r.Get(ctx, repo.Key{Hash: "USER#1"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := got.SSN.Value(); err != nil || v != ssn {
		t.Fatalf("SSN %q, %v", v, err)
	}
	stored := storedString(t, f.rawItem(t, r.Table(), map[string]types.AttributeValue{"pk": s("USER#1")}), "ssn")

	ended := spans.Ended()
	put, get := oneSpan(t, ended, "dynoseal.repo.Put"), oneSpan(t, ended, "dynoseal.repo.Get")
	for _, sp := range []sdktrace.ReadOnlySpan{put, get} {
		checkAttrs(t, sp, map[string]attribute.Value{
			"dynoseal.table":      attribute.StringValue(r.Table()),
			"dynoseal.specs":      attribute.StringValue("pii"),
			"dynoseal.key_ids":    attribute.StringValue(f.alias),
			"dynoseal.item_count": attribute.IntValue(1),
			"dynoseal.kms.calls":  attribute.Int64Value(1),
		})
	}
	gen, dec := oneSpan(t, ended, "dynoseal.kms.GenerateDataKey"), oneSpan(t, ended, "dynoseal.kms.Decrypt")
	if gen.Parent().SpanID() != put.SpanContext().SpanID() || dec.Parent().SpanID() != get.SpanContext().SpanID() {
		t.Error("KMS spans are not children of the operations that made them")
	}
	for _, sp := range []sdktrace.ReadOnlySpan{gen, dec} {
		checkAttrs(t, sp, map[string]attribute.Value{"dynoseal.kms.key_id": attribute.StringValue(f.alias)})
	}
	for _, sp := range ended {
		for _, a := range sp.Attributes() {
			if v := a.Value.String(); strings.Contains(v, ssn) || strings.Contains(v, stored) || strings.Contains(v, strings.TrimPrefix(stored, enc.Prefix)[:16]) {
				t.Errorf("span %s: attribute %s holds the value or its ciphertext", sp.Name(), a.Key)
			}
		}
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	if n := counterSum(rm, "dynoseal.kms.calls", attribute.String("operation", "GenerateDataKey")); n != 1 {
		t.Errorf("dynoseal.kms.calls{GenerateDataKey} = %d, want 1", n)
	}
	if n := counterSum(rm, "dynoseal.kms.calls", attribute.String("operation", "Decrypt")); n != 1 {
		t.Errorf("dynoseal.kms.calls{Decrypt} = %d, want 1", n)
	}
}

func oneSpan(t *testing.T, spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans %s, want 1", len(found), name)
	}
	return found[0]
}

func checkAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[string]attribute.Value) {
	t.Helper()
	got := map[string]attribute.Value{}
	for _, a := range s.Attributes() {
		got[string(a.Key)] = a.Value
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("span %s: %s = %s, want %s", s.Name(), k, got[k].String(), v.String())
		}
	}
}

// counterSum adds the points of the int64 counter name that carry attr.
func counterSum(rm metricdata.ResourceMetrics, name string, attr attribute.KeyValue) int64 {
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != name || !ok {
				continue
			}
			for _, p := range sum.DataPoints {
				if v, ok := p.Attributes.Value(attr.Key); ok && v == attr.Value {
					n += p.Value
				}
			}
		}
	}
	return n
}
