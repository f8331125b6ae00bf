package kmsx

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/internal/smithytel"
)

// scope is the instrumentation scope of the encryptor's tracer and meter.
const scope = "github.com/dynoseal/dynoseal/enc"

// Telemetry returns an enc.Observer that traces every KMS call an
// Encryptor makes (span "dynoseal.kms.<Operation>", e.g.
// "dynoseal.kms.GenerateMac" for a beacon key) through tp, records KMS
// calls, their latency and the caches' hits, misses and evictions (data
// keys, and beacon keys under cache "beacon") through mp, and logs KMS throttling (Warn) and cache evictions
// (Debug) to l. These are the tracing and metrics interfaces of the AWS SDK
// (smithy-go), so the SDK's OpenTelemetry adapters plug in. Spans carry the
// key ID, Region and outcome, never a value, a data key or an encryption
// context. Any of the three may be nil (smithy-go's no-op providers count
// as nil); with all three nil it returns nil, which enc.WithObserver takes
// as none.
//
//	enc.New(kmsx.NewFromConfig(cfg), enc.WithObserver(kmsx.Telemetry(tp, mp, logger)))
func Telemetry(tp tracing.TracerProvider, mp metrics.MeterProvider, l *slog.Logger) enc.Observer {
	tp, mp = smithytel.WithoutNops(tp, mp)
	if tp == nil && mp == nil && l == nil {
		return nil
	}
	o := &observer{log: l, metered: mp != nil}
	if tp != nil {
		o.tracer = tp.Tracer(scope)
	}
	if mp == nil {
		mp = metrics.NopMeterProvider{}
	}
	m := smithytel.Instruments{Meter: mp.Meter(scope), Log: l}
	o.kmsCalls = m.Counter("dynoseal.kms.calls", "{call}", "KMS calls by operation and outcome")
	o.kmsTime = m.Histogram("dynoseal.kms.duration", "s", "time spent waiting on one KMS call")
	o.hits = m.Counter("dynoseal.cache.hits", "{lookup}", "data keys and beacon keys taken from a cache or a session instead of KMS")
	o.misses = m.Counter("dynoseal.cache.misses", "{lookup}", "data-key and beacon-key cache lookups that went to KMS")
	o.evictions = m.Counter("dynoseal.cache.evictions", "{key}", "data keys and beacon keys dropped from a cache before use: expired, used up or for room")
	return o
}

// observer is the enc.Observer of Telemetry.
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

// StartKMS starts a span for a KMS call and returns what ends it.
func (o *observer) StartKMS(ctx context.Context, op string, key enc.KeyRef, previous int) (context.Context, func(int, error)) {
	c := kmsCall{o: o, op: op, start: time.Now(), key: key.KeyID}
	if o.tracer != nil {
		ctx, c.span = o.tracer.StartSpan(ctx, "dynoseal.kms."+op, func(so *tracing.SpanOptions) { so.Kind = tracing.SpanKindClient })
		c.span.SetProperty("dynoseal.kms.operation", op)
		c.span.SetProperty("dynoseal.kms.key_id", key.KeyID)
		if key.Region != "" {
			c.span.SetProperty("dynoseal.kms.region", key.Region)
		}
		if previous > 0 {
			c.span.SetProperty("dynoseal.kms.previous_keys", previous)
		}
	}
	return ctx, func(lookups int, err error) { c.end(ctx, lookups, err) }
}

// kmsCall is one KMS call under way.
type kmsCall struct {
	o     *observer
	op    string
	span  tracing.Span // nil without a tracer
	start time.Time
	key   string
}

// end records the call; a call the provider declined without asking KMS
// records only its key lookups.
func (c kmsCall) end(ctx context.Context, lookups int, err error) {
	if errors.Is(err, errors.ErrUnsupported) {
		c.unmade(ctx, lookups)
		return
	}
	c.record(ctx, lookups, err)
	if c.o.log != nil && errors.Is(err, enc.ErrThrottled) {
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
	c.o.kmsCalls.Add(ctx, 1, smithytel.Attrs("operation", c.op, "outcome", outcome))
	if lookups > 0 {
		c.o.kmsCalls.Add(ctx, int64(lookups), smithytel.Attrs("operation", enc.KMSDescribeKey, "outcome", outcome))
	}
	c.o.kmsTime.Record(ctx, time.Since(c.start).Seconds(), smithytel.Attrs("operation", c.op))
}

func (c kmsCall) unmade(ctx context.Context, lookups int) {
	if lookups > 0 && c.o.metered {
		c.o.kmsCalls.Add(ctx, int64(lookups), smithytel.Attrs("operation", enc.KMSDescribeKey, "outcome", "ok"))
	}
	if c.span != nil {
		c.span.SetProperty("dynoseal.kms.unsupported", true)
		c.span.End()
	}
}

// endSpan ends span with err's class, never its text.
func endSpan(span tracing.Span, err error) {
	if err != nil {
		span.SetProperty("error.type", smithytel.Classify(err, errorClasses))
		span.SetStatus(tracing.SpanStatusError)
	}
	span.End()
}

// errorClasses name enc's sentinels in telemetry.
var errorClasses = []smithytel.Class{
	{Err: enc.ErrThrottled, Name: "throttled"},
	{Err: enc.ErrAccessDenied, Name: "access_denied"},
	{Err: enc.ErrKeyNotFound, Name: "key_not_found"},
	{Err: enc.ErrKeyDisabled, Name: "key_disabled"},
	{Err: enc.ErrKeyNotAllowed, Name: "key_not_allowed"},
	{Err: enc.ErrInvalidCiphertext, Name: "invalid_ciphertext"},
	{Err: errors.ErrUnsupported, Name: "unsupported"},
}

// CacheLookup counts a cache hit or miss.
func (o *observer) CacheLookup(ctx context.Context, cache string, hit bool) {
	if !o.metered {
		return
	}
	if hit {
		o.hits.Add(ctx, 1, smithytel.Attrs("cache", cache))
	} else {
		o.misses.Add(ctx, 1, smithytel.Attrs("cache", cache))
	}
}

// CacheEvicted counts and logs a key dropped from a cache: a data key, or a
// beacon key when cache is enc.CacheBeacon. It runs under the cache's lock,
// which is why evictions log at Debug.
func (o *observer) CacheEvicted(cache, reason string) {
	if o.metered {
		o.evictions.Add(context.Background(), 1, smithytel.Attrs("cache", cache, "reason", reason))
	}
	if o.log != nil {
		o.log.Debug("dynoseal: key evicted from cache", "cache", cache, "reason", reason)
	}
}
