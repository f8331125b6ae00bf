package repo_test

import (
	"context"
	"log"
	"log/slog"
	"os"

	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/kmsx"
	"github.com/dynoseal/dynoseal/repo"
)

// Trace a repository and the KMS calls of its encryptor, count KMS calls,
// cache hits and batch retries, and log retries and throttling.
//
// The providers are the AWS SDK's own interfaces. With OpenTelemetry, adapt
// your OTel providers with the SDK's adapter modules, as for an SDK client:
//
//	tp := smithyoteltracing.Adapt(otelTracerProvider) // github.com/aws/smithy-go/tracing/smithyoteltracing
//	mp := smithyotelmetrics.Adapt(otelMeterProvider)  // github.com/aws/smithy-go/metrics/smithyotelmetrics
//
// Give them to the encryptor too: KMS calls are made (and traced) there,
// as children of the repository's spans.
func ExampleWithTracerProvider() {
	var tp tracing.TracerProvider = tracing.NopTracerProvider{} // e.g. smithyoteltracing.Adapt(...)
	var mp metrics.MeterProvider = metrics.NopMeterProvider{}   // e.g. smithyotelmetrics.Adapt(...)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	encryptor := enc.New(kmsx.New(), enc.WithCache(enc.CacheLimits{}),
		enc.WithObserver(kmsx.Telemetry(tp, mp, logger)))
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/my-app-key"})
	customers, err := repo.New[Customer]("customers", repo.WithRegistry(reg), repo.WithEncryptor(encryptor),
		repo.WithTracerProvider(tp), repo.WithMeterProvider(mp), repo.WithLogger(logger))
	if err != nil {
		log.Fatal(err)
	}

	// One span "dynoseal.repo.Put" (table, specs, key IDs, item count, KMS
	// calls, cache hits and misses), with "dynoseal.kms.GenerateDataKey"
	// inside it when the encrypt cache has no key to give.
	err = customers.Put(context.Background(), Customer{PK: "CUST#1", SSN: field.NewEncrypted("123-45-6789")})
	if err != nil {
		log.Fatal(err)
	}
}
