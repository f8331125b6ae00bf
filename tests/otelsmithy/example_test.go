package otelsmithy_test

import (
	"context"
	"fmt"
	"log"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/kmsx"
	"github.com/dynoseal/dynoseal/tests/otelsmithy"
)

// An encryptor traced by the OpenTelemetry SDK: one span per KMS call,
// naming the key, never the value. (In an application, adapt the provider
// with smithyoteltracing.Adapt instead.)
func Example() {
	ctx := context.Background()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer func() { _ = tp.Shutdown(ctx) }()

	e := enc.New(enctest.New(), enc.WithObserver(kmsx.Telemetry(otelsmithy.TracerProvider(tp), nil, nil)))
	spec := enc.Spec{KeyID: "alias/app"}
	sealed, err := e.Encrypt(ctx, spec, []byte("123-45-6789"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := e.Decrypt(ctx, spec, sealed); err != nil {
		log.Fatal(err)
	}
	for _, s := range spans.Ended() {
		for _, a := range s.Attributes() {
			if a.Key == "dynoseal.kms.key_id" {
				fmt.Println(s.Name(), a.Value.AsString())
			}
		}
	}
	// Output:
	// dynoseal.kms.GenerateDataKey alias/app
	// dynoseal.kms.Decrypt alias/app
}
