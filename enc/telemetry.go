package enc

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"

	"github.com/dynoseal/dynoseal/internal/callstats"
)

// Names of the KMS operations in spans, metrics and log lines.
const (
	kmsGenerate    = "GenerateDataKey"
	kmsDecrypt     = "Decrypt"
	kmsReEncrypt   = "ReEncrypt"
	kmsDescribeKey = "DescribeKey"
)

// scope is the instrumentation scope of the encryptor's tracer and meter.
const scope = "github.com/dynoseal/dynoseal/enc"

// WithTracerProvider traces every KMS call (span "dynoseal.kms.<Operation>")
// through tp, the tracing interface of the AWS SDK, so the SDK's own
// OpenTelemetry adapter plugs in. Spans carry the key ID, region and outcome,
// never a value, a data key or an encryption context. Default: no spans.
func WithTracerProvider(tp tracing.TracerProvider) Option {
	return func(o *Options) { o.TracerProvider = tp }
}

// WithMeterProvider records KMS calls, their latency and the data-key
// caches' hits, misses and evictions through mp. Default: no metrics.
func WithMeterProvider(mp metrics.MeterProvider) Option {
	return func(o *Options) { o.MeterProvider = mp }
}

// WithLogger logs KMS throttling (Warn) and cache evictions (Debug) to l.
// Default: no logging.
func WithLogger(l *slog.Logger) Option { return func(o *Options) { o.Logger = l } }

// observer holds an encryptor's telemetry; the encryptor's is nil when none
// was asked for, so that the calls cost nothing more than a nil check.
type observer struct {
	tracer    tracing.Tracer // nil: no spans
	log       *slog.Logger   // nil: no log lines
	metered   bool           // false: the instruments are no-ops, skipped
	kmsCalls  metrics.Int64Counter
	kmsTime   metrics.Float64Histogram
	hits      metrics.Int64Counter
	misses    metrics.Int64Counter
	evictions metrics.Int64Counter
}

// newObserver returns nil when o asks for no telemetry. An instrument the
// meter fails to make is replaced by a no-op one and, with a logger, said
// so: New has no error to return, and telemetry must not stop encryption.
func newObserver(o Options) *observer {
	o.TracerProvider, o.MeterProvider = withoutNops(o.TracerProvider, o.MeterProvider)
	if o.TracerProvider == nil && o.MeterProvider == nil && o.Logger == nil {
		return nil
	}
	ob := &observer{log: o.Logger}
	if o.TracerProvider != nil {
		ob.tracer = o.TracerProvider.Tracer(scope)
	}
	mp := o.MeterProvider
	ob.metered = mp != nil
	if mp == nil {
		mp = metrics.NopMeterProvider{}
	}
	m := instruments{meter: mp.Meter(scope), log: o.Logger}
	ob.kmsCalls = m.counter("dynoseal.kms.calls", "{call}", "KMS calls by operation and outcome")
	ob.kmsTime = m.histogram("dynoseal.kms.duration", "s", "time spent waiting on one KMS call")
	ob.hits = m.counter("dynoseal.cache.hits", "{lookup}", "data keys taken from a cache or a session instead of KMS")
	ob.misses = m.counter("dynoseal.cache.misses", "{lookup}", "data-key cache lookups that went to KMS")
	ob.evictions = m.counter("dynoseal.cache.evictions", "{key}", "data keys dropped from a cache before use: expired, used up or for room")
	return ob
}

// withoutNops returns nil for smithy-go's no-op providers, so that passing
// them costs nothing: spans nobody sees would still allocate their
// attributes.
func withoutNops(tp tracing.TracerProvider, mp metrics.MeterProvider) (tracing.TracerProvider, metrics.MeterProvider) {
	if _, nop := tp.(tracing.NopTracerProvider); nop {
		tp = nil
	}
	if _, nop := mp.(metrics.NopMeterProvider); nop {
		mp = nil
	}
	return tp, mp
}

// instruments makes a meter's instruments, falling back to no-op ones.
type instruments struct {
	meter metrics.Meter
	log   *slog.Logger
}

func (m instruments) counter(name, unit, desc string) metrics.Int64Counter {
	c, err := m.meter.Int64Counter(name, describe(unit, desc))
	if err != nil || c == nil {
		m.failed(name, err)
		nop, _ := metrics.NopMeterProvider{}.Meter("").Int64Counter(name)
		return nop
	}
	return c
}

func (m instruments) histogram(name, unit, desc string) metrics.Float64Histogram {
	h, err := m.meter.Float64Histogram(name, describe(unit, desc))
	if err != nil || h == nil {
		m.failed(name, err)
		nop, _ := metrics.NopMeterProvider{}.Meter("").Float64Histogram(name)
		return nop
	}
	return h
}

func (m instruments) failed(name string, err error) {
	if m.log != nil {
		m.log.Warn("dynoseal: metric instrument not created; recording nothing for it", "instrument", name, "error", err)
	}
}

func describe(unit, desc string) metrics.InstrumentOption {
	return func(o *metrics.InstrumentOptions) { o.UnitLabel, o.Description = unit, desc }
}

// with sets metric attributes.
func with(kv ...string) metrics.RecordMetricOption {
	return func(o *metrics.RecordMetricOptions) {
		for i := 0; i+1 < len(kv); i += 2 {
			o.Properties.Set(kv[i], kv[i+1])
		}
	}
}

// kmsCall is one KMS call under way.
type kmsCall struct {
	o     *observer
	op    string
	span  tracing.Span // nil without a tracer
	start time.Time
	key   string
}

// startKMS starts observing a KMS call on ref's key.
func (o *observer) startKMS(ctx context.Context, op string, ref KeyRef, previous int) (context.Context, kmsCall) {
	if o == nil {
		return ctx, kmsCall{}
	}
	c := kmsCall{o: o, op: op, start: time.Now(), key: ref.KeyID}
	if o.tracer != nil {
		ctx, c.span = o.tracer.StartSpan(ctx, "dynoseal.kms."+op, func(so *tracing.SpanOptions) { so.Kind = tracing.SpanKindClient })
		c.span.SetProperty("dynoseal.kms.operation", op)
		c.span.SetProperty("dynoseal.kms.key_id", ref.KeyID)
		if ref.Region != "" {
			c.span.SetProperty("dynoseal.kms.region", ref.Region)
		}
		if previous > 0 {
			c.span.SetProperty("dynoseal.kms.previous_keys", previous)
		}
	}
	return ctx, c
}

// end counts the call, and the key lookups it made, against the operation
// in ctx, and records it. err is what the provider said.
func (c kmsCall) end(ctx context.Context, lookups int, err error) {
	callstats.AddKMS(ctx, 1+int64(lookups))
	if c.o == nil {
		return
	}
	c.record(ctx, lookups, err)
	if c.o.log != nil && errors.Is(err, ErrThrottled) {
		c.o.log.WarnContext(ctx, "dynoseal: KMS request throttled", "operation", c.op, "key_id", c.key)
	}
	if c.span == nil {
		return
	}
	if lookups > 0 {
		c.span.SetProperty("dynoseal.kms.describe_key_calls", lookups)
	}
	endSpan(c.span, err)
}

// record adds the call and its lookups to the metrics.
func (c kmsCall) record(ctx context.Context, lookups int, err error) {
	if !c.o.metered {
		return // attribute sets allocate even for no-op instruments
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	c.o.kmsCalls.Add(ctx, 1, with("operation", c.op, "outcome", outcome))
	if lookups > 0 {
		c.o.kmsCalls.Add(ctx, int64(lookups), with("operation", kmsDescribeKey, "outcome", outcome))
	}
	c.o.kmsTime.Record(ctx, time.Since(c.start).Seconds(), with("operation", c.op))
}

// unmade ends the observation of a call the provider declined without
// asking KMS (ReEncrypt it does not support), counting only its lookups.
func (c kmsCall) unmade(ctx context.Context, lookups int) {
	callstats.AddKMS(ctx, int64(lookups))
	if c.o == nil {
		return
	}
	if lookups > 0 && c.o.metered {
		c.o.kmsCalls.Add(ctx, int64(lookups), with("operation", kmsDescribeKey, "outcome", "ok"))
	}
	if c.span != nil {
		c.span.SetProperty("dynoseal.kms.unsupported", true)
		c.span.End()
	}
}

// endSpan ends span with err's class, never its text.
func endSpan(span tracing.Span, err error) {
	if err != nil {
		span.SetProperty("error.type", callstats.Classify(err, errorClasses))
		span.SetStatus(tracing.SpanStatusError)
	}
	span.End()
}

// errorClasses name this package's sentinels in telemetry.
var errorClasses = []callstats.Class{
	{Err: ErrThrottled, Name: "throttled"},
	{Err: ErrAccessDenied, Name: "access_denied"},
	{Err: ErrKeyNotFound, Name: "key_not_found"},
	{Err: ErrKeyDisabled, Name: "key_disabled"},
	{Err: ErrKeyNotAllowed, Name: "key_not_allowed"},
	{Err: ErrInvalidCiphertext, Name: "invalid_ciphertext"},
	{Err: errors.ErrUnsupported, Name: "unsupported"},
}

// Names of the caches in metrics and log lines.
const (
	encryptCache = "encrypt"
	decryptCache = "decrypt"
	sessionMemo  = "session"
)

// hit counts a data key taken from cache instead of KMS.
func (o *observer) hit(ctx context.Context, cache string) {
	callstats.Hit(ctx)
	if o != nil && o.metered {
		o.hits.Add(ctx, 1, with("cache", cache))
	}
}

// miss counts a cache lookup that went to KMS.
func (o *observer) miss(ctx context.Context, cache string) {
	callstats.Miss(ctx)
	if o != nil && o.metered {
		o.misses.Add(ctx, 1, with("cache", cache))
	}
}

// evicted returns what a cache calls when it drops a key before its
// holders are done with it, or nil when nobody listens. It runs under the
// cache's lock, so it only counts and logs; a logger that blocks would
// hold the cache up, which is why evictions log at Debug.
func (o *observer) evicted(cache string) func(reason string) {
	if o == nil {
		return nil
	}
	return func(reason string) {
		if o.metered {
			o.evictions.Add(context.Background(), 1, with("cache", cache, "reason", reason))
		}
		if o.log != nil {
			o.log.Debug("dynoseal: data key evicted from cache", "cache", cache, "reason", reason)
		}
	}
}

// Reasons a cache evicts a key.
const (
	evictExpired = "expired"
	evictUsedUp  = "used_up"
	evictFull    = "full"
)

// evictLocked removes e, telling the observer why.
func (c *keyCache) evictLocked(e *cacheEntry, reason string) {
	c.removeLocked(e)
	if c.onEvict != nil {
		c.onEvict(reason)
	}
}
