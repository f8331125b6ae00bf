package repo_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/internal/teltest"
	"github.com/dynoseal/dynoseal/kmsx"
	"github.com/dynoseal/dynoseal/repo"
)

// BenchmarkTelemetry is a Put and a Get of an item with one encrypted value
// over the in-process DynamoDB: without telemetry, with the no-op providers
// (what an application gets when its exporter is off) and with a recorder.
func BenchmarkTelemetry(b *testing.B) {
	rec := teltest.New()
	cases := []struct {
		name string
		tp   tracing.TracerProvider
		mp   metrics.MeterProvider
		log  *slog.Logger
	}{
		{"off", nil, nil, nil},
		{"nop", tracing.NopTracerProvider{}, metrics.NopMeterProvider{}, slog.New(slog.NewTextHandler(io.Discard, nil))},
		{"recorded", rec, rec, nil},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			reg := enc.NewRegistry()
			reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
			e := enc.New(enctest.New(), enc.WithObserver(kmsx.Telemetry(c.tp, c.mp, c.log)))
			r, err := repo.New[Account]("accounts", repo.WithClient(fakeAccounts(b)), repo.WithRegistry(reg), repo.WithEncryptor(e),
				repo.WithTracerProvider(c.tp), repo.WithMeterProvider(c.mp), repo.WithLogger(c.log))
			if err != nil {
				b.Fatal(err)
			}
			item := Account{PK: "A", SK: 1, SSN: field.NewEncrypted("123-45-6789")}
			b.ReportAllocs()
			for b.Loop() {
				if err := r.Put(ctx, item); err != nil {
					b.Fatal(err)
				}
				if _, err := r.Get(ctx, repo.Key{Hash: "A", Range: 1}); err != nil {
					b.Fatal(err)
				}
				rec.Reset()
			}
		})
	}
}
