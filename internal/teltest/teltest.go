// Package teltest records the spans and metrics that the library sends to a
// smithy-go TracerProvider and MeterProvider, for the tests of enc and repo.
package teltest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"
)

// Span is one recorded span.
type Span struct {
	name   string
	Parent *Span
	Kind   tracing.SpanKind
	Status tracing.SpanStatus
	Props  map[any]any
	Ended  bool
	rec    *Recorder
}

// Recorder is a tracing.TracerProvider and a metrics.MeterProvider that
// keeps what it is given. It is safe for concurrent use.
type Recorder struct {
	mu    sync.Mutex
	spans []*Span
	// sums holds the sum of each metric by name and sorted attributes.
	sums map[string]float64
}

// New returns an empty recorder.
func New() *Recorder { return &Recorder{sums: map[string]float64{}} }

type spanKey struct{}

// Tracer implements tracing.TracerProvider.
func (r *Recorder) Tracer(string, ...tracing.TracerOption) tracing.Tracer { return tracer{r} }

type tracer struct{ r *Recorder }

func (t tracer) StartSpan(ctx context.Context, name string, opts ...tracing.SpanOption) (context.Context, tracing.Span) {
	var o tracing.SpanOptions
	for _, opt := range opts {
		opt(&o)
	}
	parent, _ := ctx.Value(spanKey{}).(*Span)
	s := &Span{name: name, Parent: parent, Kind: o.Kind, Props: map[any]any{}, rec: t.r}
	t.r.mu.Lock()
	t.r.spans = append(t.r.spans, s)
	t.r.mu.Unlock()
	return context.WithValue(ctx, spanKey{}, s), s
}

// Name implements tracing.Span.
func (s *Span) Name() string { return s.name }

// Context implements tracing.Span.
func (s *Span) Context() tracing.SpanContext { return tracing.SpanContext{} }

// AddEvent implements tracing.Span.
func (s *Span) AddEvent(string, ...tracing.EventOption) {}

// SetStatus implements tracing.Span.
func (s *Span) SetStatus(st tracing.SpanStatus) {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	s.Status = st
}

// Prop returns a property of the span.
func (s *Span) Prop(k string) any {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	return s.Props[k]
}

// SetProperty implements tracing.Span.
func (s *Span) SetProperty(k, v any) {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	s.Props[k] = v
}

// End implements tracing.Span.
func (s *Span) End() {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	s.Ended = true
}

// Spans returns the spans recorded so far, in start order.
func (r *Recorder) Spans() []*Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// Named returns the spans called name.
func (r *Recorder) Named(name string) []*Span {
	return slices.DeleteFunc(r.Spans(), func(s *Span) bool { return s.name != name })
}

// Reset forgets every span and metric.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans, r.sums = nil, map[string]float64{}
}

// Meter implements metrics.MeterProvider: counters and histograms record,
// other instruments do nothing.
func (r *Recorder) Meter(string, ...metrics.MeterOption) metrics.Meter {
	return meter{Meter: metrics.NopMeterProvider{}.Meter(""), r: r}
}

type meter struct {
	metrics.Meter
	r *Recorder
}

func (m meter) Int64Counter(name string, _ ...metrics.InstrumentOption) (metrics.Int64Counter, error) {
	return instrument{m.r, name}, nil
}

func (m meter) Float64Histogram(name string, _ ...metrics.InstrumentOption) (metrics.Float64Histogram, error) {
	return instrument{m.r, name}, nil
}

type instrument struct {
	r    *Recorder
	name string
}

func (i instrument) Add(_ context.Context, n int64, opts ...metrics.RecordMetricOption) {
	i.r.add(i.name, float64(n), opts)
}

func (i instrument) Record(_ context.Context, v float64, opts ...metrics.RecordMetricOption) {
	i.r.add(i.name, v, opts)
}

func (r *Recorder) add(name string, v float64, opts []metrics.RecordMetricOption) {
	var o metrics.RecordMetricOptions
	for _, opt := range opts {
		opt(&o)
	}
	props := o.Properties.Values()
	keys := slices.SortedFunc(maps.Keys(props), func(a, b any) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	id := name
	for _, k := range keys {
		id += fmt.Sprintf(" %v=%v", k, props[k])
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sums[id] += v
}

// Sum returns the sum of what metric name recorded with at least the
// attributes given as key, value pairs.
func (r *Recorder) Sum(name string, kv ...string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	total := 0.0
	for id, v := range r.sums {
		if matches(id, name, kv) {
			total += v
		}
	}
	return total
}

func matches(id, name string, kv []string) bool {
	if id != name && !strings.HasPrefix(id, name+" ") {
		return false
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if !strings.Contains(id+" ", " "+kv[i]+"="+kv[i+1]+" ") {
			return false
		}
	}
	return true
}

// Metrics returns every metric recorded, as "name k=v ..." -> sum.
func (r *Recorder) Metrics() map[string]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.sums)
}

// Problems lists what is wrong with the recorded spans: one not ended, a
// property that is not a string, number or bool, or one that holds any of
// secrets (plaintexts, stored values, context values).
func (r *Recorder) Problems(secrets ...string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.spans {
		if !s.Ended {
			out = append(out, "span "+s.name+" not ended")
		}
		for k, v := range s.Props {
			out = append(out, propProblems(s.name, k, v, secrets)...)
		}
	}
	return out
}

func propProblems(span string, k, v any, secrets []string) []string {
	var out []string
	switch v.(type) {
	case string, int, int64, bool:
	default:
		out = append(out, fmt.Sprintf("span %s: property %v is a %T", span, k, v))
	}
	for _, secret := range secrets {
		if strings.Contains(fmt.Sprint(v), secret) {
			out = append(out, fmt.Sprintf("span %s: property %v holds a secret", span, k))
		}
	}
	return out
}
