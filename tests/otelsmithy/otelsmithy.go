// Package otelsmithy adapts OpenTelemetry to the smithy-go tracing and
// metrics interfaces that dynoseal (like the AWS SDK) reports to.
//
// In an application, use the AWS SDK's own adapters instead:
// github.com/aws/smithy-go/tracing/smithyoteltracing and
// github.com/aws/smithy-go/metrics/smithyotelmetrics. They are not
// available to this module's build, so the tests carry this minimal one:
// spans with kinds, properties, events and status; Int64Counter and
// Float64Histogram (the instruments dynoseal uses); every other instrument
// records nothing.
package otelsmithy

import (
	"context"
	"fmt"

	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// TracerProvider adapts tp.
func TracerProvider(tp trace.TracerProvider) tracing.TracerProvider { return tracerProvider{tp} }

type tracerProvider struct{ tp trace.TracerProvider }

func (p tracerProvider) Tracer(scope string, _ ...tracing.TracerOption) tracing.Tracer {
	return tracer{p.tp.Tracer(scope)}
}

type tracer struct{ t trace.Tracer }

func (t tracer) StartSpan(ctx context.Context, name string, opts ...tracing.SpanOption) (context.Context, tracing.Span) {
	var o tracing.SpanOptions
	for _, opt := range opts {
		opt(&o)
	}
	ctx, s := t.t.Start(ctx, name, trace.WithSpanKind(spanKind(o.Kind)), trace.WithAttributes(attributes(&o.Properties)...))
	return ctx, span{name: name, s: s}
}

func spanKind(k tracing.SpanKind) trace.SpanKind {
	switch k {
	case tracing.SpanKindClient:
		return trace.SpanKindClient
	case tracing.SpanKindServer:
		return trace.SpanKindServer
	case tracing.SpanKindProducer:
		return trace.SpanKindProducer
	case tracing.SpanKindConsumer:
		return trace.SpanKindConsumer
	}
	return trace.SpanKindInternal
}

type span struct {
	name string
	s    trace.Span
}

func (s span) Name() string { return s.name }

func (s span) Context() tracing.SpanContext {
	sc := s.s.SpanContext()
	return tracing.SpanContext{TraceID: sc.TraceID().String(), SpanID: sc.SpanID().String(), IsRemote: sc.IsRemote()}
}

func (s span) AddEvent(name string, opts ...tracing.EventOption) {
	var o tracing.EventOptions
	for _, opt := range opts {
		opt(&o)
	}
	s.s.AddEvent(name, trace.WithAttributes(attributes(&o.Properties)...))
}

func (s span) SetStatus(st tracing.SpanStatus) {
	switch st {
	case tracing.SpanStatusOK:
		s.s.SetStatus(codes.Ok, "")
	case tracing.SpanStatusError:
		s.s.SetStatus(codes.Error, "")
	}
}

func (s span) SetProperty(k, v any) { s.s.SetAttributes(kv(k, v)) }

func (s span) End() { s.s.End() }

func attributes(p *smithy.Properties) []attribute.KeyValue {
	var out []attribute.KeyValue
	for k, v := range p.Values() {
		out = append(out, kv(k, v))
	}
	return out
}

func kv(k, v any) attribute.KeyValue {
	key := attribute.Key(fmt.Sprint(k))
	switch v := v.(type) {
	case string:
		return key.String(v)
	case int:
		return key.Int(v)
	case int64:
		return key.Int64(v)
	case bool:
		return key.Bool(v)
	case float64:
		return key.Float64(v)
	case []string:
		return key.StringSlice(v)
	}
	return key.String(fmt.Sprint(v))
}

// MeterProvider adapts mp.
func MeterProvider(mp metric.MeterProvider) metrics.MeterProvider { return meterProvider{mp} }

type meterProvider struct{ mp metric.MeterProvider }

func (p meterProvider) Meter(scope string, _ ...metrics.MeterOption) metrics.Meter {
	return meter{Meter: metrics.NopMeterProvider{}.Meter(scope), m: p.mp.Meter(scope)}
}

type meter struct {
	metrics.Meter // the instruments not adapted: no-ops
	m             metric.Meter
}

func instrumentOptions(opts []metrics.InstrumentOption) metrics.InstrumentOptions {
	var o metrics.InstrumentOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

func (m meter) Int64Counter(name string, opts ...metrics.InstrumentOption) (metrics.Int64Counter, error) {
	o := instrumentOptions(opts)
	c, err := m.m.Int64Counter(name, metric.WithUnit(o.UnitLabel), metric.WithDescription(o.Description))
	if err != nil {
		return nil, err
	}
	return int64Counter{c}, nil
}

func (m meter) Float64Histogram(name string, opts ...metrics.InstrumentOption) (metrics.Float64Histogram, error) {
	o := instrumentOptions(opts)
	h, err := m.m.Float64Histogram(name, metric.WithUnit(o.UnitLabel), metric.WithDescription(o.Description))
	if err != nil {
		return nil, err
	}
	return float64Histogram{h}, nil
}

type int64Counter struct{ c metric.Int64Counter }

func (c int64Counter) Add(ctx context.Context, n int64, opts ...metrics.RecordMetricOption) {
	c.c.Add(ctx, n, metric.WithAttributes(recordAttributes(opts)...))
}

type float64Histogram struct{ h metric.Float64Histogram }

func (h float64Histogram) Record(ctx context.Context, v float64, opts ...metrics.RecordMetricOption) {
	h.h.Record(ctx, v, metric.WithAttributes(recordAttributes(opts)...))
}

func recordAttributes(opts []metrics.RecordMetricOption) []attribute.KeyValue {
	var o metrics.RecordMetricOptions
	for _, opt := range opts {
		opt(&o)
	}
	return attributes(&o.Properties)
}
