package repo

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/internal/batchrun"
	"github.com/dynoseal/dynoseal/internal/callstats"
	"github.com/dynoseal/dynoseal/internal/smithytel"
)

// scope is the instrumentation scope of the repositories' tracer and meter.
const scope = "github.com/dynoseal/dynoseal/repo"

// WithTracerProvider traces every operation of the repository (span
// "dynoseal.repo.<Method>") through tp, the tracing interface of the AWS
// SDK, so the SDK's own OpenTelemetry adapter plugs in. Spans carry the
// table, the spec names and key IDs of T, the item count, the KMS calls and
// data-key cache hits and misses of the operation and the class of its
// error; never a value, a key of an item or a page token. KMS calls get
// spans of their own from the encryptor: see enc.WithObserver and kmsx.Telemetry.
// Default: no spans.
func WithTracerProvider(tp tracing.TracerProvider) Option {
	return func(o *Options) { o.TracerProvider = tp }
}

// WithMeterProvider records batch retries, items left unprocessed and
// transaction conflicts retried through mp. Default: no metrics.
func WithMeterProvider(mp metrics.MeterProvider) Option {
	return func(o *Options) { o.MeterProvider = mp }
}

// WithLogger logs batch retries (Debug), throttling and items given up on
// (Warn) and transaction conflicts retried (Info) to l. Default: no logging.
func WithLogger(l *slog.Logger) Option { return func(o *Options) { o.Logger = l } }

// telemetry is a repository's; nil when none was asked for, so that an
// operation costs one nil check more.
type telemetry struct {
	table  string
	tracer tracing.Tracer // nil: no spans
	log    *slog.Logger   // nil: no log lines
	// specs and keyIDs are T's spec names and their KMS key IDs, sorted.
	specs, keyIDs []string

	batchRetries, unprocessed, txRetries metrics.Int64Counter
}

// newTelemetry returns nil when o asks for no telemetry.
func newTelemetry(table string, o Options, specs map[string]enc.Spec) *telemetry {
	o.TracerProvider, o.MeterProvider = smithytel.WithoutNops(o.TracerProvider, o.MeterProvider)
	if o.TracerProvider == nil && o.MeterProvider == nil && o.Logger == nil {
		return nil
	}
	t := &telemetry{table: table, log: o.Logger, specs: slices.Sorted(maps.Keys(specs))}
	t.keyIDs = keyIDs(specs)
	if o.TracerProvider != nil {
		t.tracer = o.TracerProvider.Tracer(scope)
	}
	mp := o.MeterProvider
	if mp == nil {
		mp = metrics.NopMeterProvider{}
	}
	m := smithytel.Instruments{Meter: mp.Meter(scope), Log: o.Logger}
	t.batchRetries = m.Counter("dynoseal.batch.retries", "{request}", "batch requests sent again for unprocessed items or throttling")
	t.unprocessed = m.Counter("dynoseal.batch.unprocessed", "{item}", "batch items left unprocessed when a call gave up")
	t.txRetries = m.Counter("dynoseal.tx.conflict_retries", "{request}", "transactions sent again after a conflict")
	return t
}

// keyIDs returns the sorted KMS key IDs of specs.
func keyIDs(specs map[string]enc.Spec) []string {
	var ids []string
	for _, s := range specs {
		ids = append(ids, s.KeyID)
	}
	return sortedSet(ids)
}

// opSpan is one traced operation.
type opSpan struct {
	span  tracing.Span
	calls callstats.Calls
	items int
}

// trace starts the span of operation op on items items (written, or keys
// read); nil without a tracer. The operation passes the returned context on,
// so the encryptor counts its KMS work and nests its spans.
func (r *Repo[T]) trace(ctx context.Context, op string, items int) (context.Context, *opSpan) {
	t := r.tel
	if t == nil || t.tracer == nil {
		return ctx, nil
	}
	return t.start(ctx, op, items, []string{t.table}, t.specs, t.keyIDs)
}

func (t *telemetry) start(ctx context.Context, op string, items int, tables, specs, keyIDs []string) (context.Context, *opSpan) {
	s := &opSpan{items: items}
	ctx, s.span = t.tracer.StartSpan(ctx, "dynoseal.repo."+op, func(o *tracing.SpanOptions) { o.Kind = tracing.SpanKindClient })
	s.span.SetProperty("db.system", "aws.dynamodb")
	s.span.SetProperty("dynoseal.operation", op)
	s.span.SetProperty("dynoseal.table", strings.Join(tables, ","))
	if len(specs) > 0 {
		s.span.SetProperty("dynoseal.specs", strings.Join(specs, ","))
		s.span.SetProperty("dynoseal.key_ids", strings.Join(keyIDs, ","))
	}
	return callstats.With(ctx, &s.calls), s
}

// setItems replaces the item count, for reads that learn it at the end.
func (s *opSpan) setItems(n int) {
	if s != nil {
		s.items = n
	}
}

// end ends the span with the operation's counts and *err's class.
func (s *opSpan) end(err *error) {
	if s == nil {
		return
	}
	s.span.SetProperty("dynoseal.item_count", s.items)
	s.span.SetProperty("dynoseal.kms.calls", s.calls.KMS.Load())
	s.span.SetProperty("dynoseal.cache.hits", s.calls.CacheHits.Load())
	s.span.SetProperty("dynoseal.cache.misses", s.calls.CacheMisses.Load())
	if n := s.calls.Retries.Load(); n > 0 {
		s.span.SetProperty("dynoseal.retries", n)
	}
	if *err != nil {
		s.span.SetProperty("error.type", smithytel.Classify(*err, errorClasses))
		s.span.SetStatus(tracing.SpanStatusError)
	}
	s.span.End()
}

// errorClasses name the sentinels of this package and enc in telemetry.
var errorClasses = []smithytel.Class{
	{Err: ErrNotFound, Name: "not_found"},
	{Err: ErrVersionConflict, Name: "version_conflict"},
	{Err: ErrConditionFailed, Name: "condition_failed"},
	{Err: ErrItemTooLarge, Name: "item_too_large"},
	{Err: ErrDuplicateKey, Name: "duplicate_key"},
	{Err: enc.ErrThrottled, Name: "kms_throttled"},
	{Err: enc.ErrAccessDenied, Name: "kms_access_denied"},
	{Err: enc.ErrKeyNotFound, Name: "kms_key_not_found"},
	{Err: enc.ErrKeyDisabled, Name: "kms_key_disabled"},
	{Err: enc.ErrInvalidCiphertext, Name: "invalid_ciphertext"},
	{Err: enc.ErrMalformed, Name: "malformed"},
	{Err: enc.ErrReadOnly, Name: "read_only"},
	{Err: enc.ErrWriteOnly, Name: "write_only"},
	{Err: enc.ErrNoSpec, Name: "no_spec"},
}

// batchLimits are the limits of batch operation op, with its retries
// counted and logged.
func (r *Repo[T]) batchLimits(op string) batchrun.Limits {
	l := r.batch.limits()
	t := r.tel
	if t == nil {
		return l
	}
	l.OnRetry = func(ctx context.Context, attempt, entries int, throttle error) {
		callstats.Retry(ctx)
		t.batchRetries.Add(ctx, 1, smithytel.Attrs("table", t.table, "operation", op, "throttled", boolString(throttle != nil)))
		if t.log == nil {
			return
		}
		if throttle != nil {
			t.log.WarnContext(ctx, "dynoseal: batch request throttled; retrying", "table", t.table, "operation", op, "attempt", attempt+1, "items", entries, "error_type", smithytel.Classify(throttle, nil))
			return
		}
		t.log.DebugContext(ctx, "dynoseal: retrying unprocessed batch items", "table", t.table, "operation", op, "attempt", attempt+1, "items", entries)
	}
	l.OnLeft = func(ctx context.Context, entries int) {
		t.unprocessed.Add(ctx, int64(entries), smithytel.Attrs("table", t.table, "operation", op))
		if t.log != nil {
			t.log.WarnContext(ctx, "dynoseal: batch items left unprocessed", "table", t.table, "operation", op, "items", entries)
		}
	}
	return l
}

// txLimits are the limits of a transaction's retries, counted and logged.
func (r *Repo[T]) txLimits(op string) batchrun.Limits {
	l := r.batch.limits()
	t := r.tel
	if t == nil {
		return l
	}
	l.OnRetry = func(ctx context.Context, attempt, _ int, _ error) {
		callstats.Retry(ctx)
		t.txRetries.Add(ctx, 1, smithytel.Attrs("operation", op))
		if t.log != nil {
			t.log.InfoContext(ctx, "dynoseal: transaction conflict; retrying", "operation", op, "attempt", attempt+1)
		}
	}
	return l
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// traceTx starts the span of a transaction over the repositories of tels:
// traced by the first that has a tracer, naming all their tables and specs.
func traceTx(ctx context.Context, op string, items int, tels []*telemetry) (context.Context, *opSpan) {
	var first *telemetry
	var tables, specs, keyIDs []string
	for _, t := range tels {
		if t == nil {
			continue
		}
		if first == nil && t.tracer != nil {
			first = t
		}
		tables, specs, keyIDs = append(tables, t.table), append(specs, t.specs...), append(keyIDs, t.keyIDs...)
	}
	if first == nil {
		return ctx, nil
	}
	return first.start(ctx, op, items, sortedSet(tables), sortedSet(specs), sortedSet(keyIDs))
}

func sortedSet(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// endPage ends the span of a page read, counting the page's items.
func endPage[T any](s *opSpan, p *Page[T], err *error) {
	s.setItems(len(p.Items))
	s.end(err)
}

// endCount ends the span of a count, with the count as its item count.
func endCount(s *opSpan, n *int64, err *error) {
	s.setItems(int(*n))
	s.end(err)
}

// traceSeq starts the span of an iteration, op, and returns yield wrapped to
// count the items it hands out and keep the first error, and the function
// that ends the span when the iteration ends. Without a tracer it returns
// ctx and yield as they are.
func (r *Repo[T]) traceSeq(ctx context.Context, op string, yield func(T, error) bool) (context.Context, func(T, error) bool, func()) {
	ctx, s := r.trace(ctx, op, 0)
	if s == nil {
		return ctx, yield, func() {}
	}
	var err error
	counted := func(t T, e error) bool {
		if e == nil {
			s.items++
		} else if err == nil {
			err = e
		}
		return yield(t, e)
	}
	return ctx, counted, func() { s.end(&err) }
}

func txWriteTelemetry(ops []TxWrite) []*telemetry {
	if !slices.ContainsFunc(ops, func(op TxWrite) bool { return op.tel.traced() }) {
		return nil // no allocation when nothing is traced
	}
	tels := make([]*telemetry, 0, len(ops))
	for _, op := range ops {
		tels = append(tels, op.tel)
	}
	return tels
}

func txReadTelemetry(ops []TxRead) []*telemetry {
	if !slices.ContainsFunc(ops, func(op TxRead) bool { return op.tel.traced() }) {
		return nil // no allocation when nothing is traced
	}
	tels := make([]*telemetry, 0, len(ops))
	for _, op := range ops {
		tels = append(tels, op.tel)
	}
	return tels
}

func (t *telemetry) traced() bool { return t != nil && t.tracer != nil }
