// Package smithytel holds what repo and kmsx share to report through smithy-go's tracing and metrics interfaces.
package smithytel

import (
	"log/slog"

	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"
)

// WithoutNops returns nil for smithy-go's no-op providers, so that passing
// them costs nothing: spans nobody sees would still allocate their
// attributes.
func WithoutNops(tp tracing.TracerProvider, mp metrics.MeterProvider) (tracing.TracerProvider, metrics.MeterProvider) {
	if _, nop := tp.(tracing.NopTracerProvider); nop {
		tp = nil
	}
	if _, nop := mp.(metrics.NopMeterProvider); nop {
		mp = nil
	}
	return tp, mp
}

// Instruments makes a meter's instruments, falling back to no-op ones: a
// metric must not stop encryption or a repository from working, and their
// constructors have no error to return. A failure is logged to Log, if set.
type Instruments struct {
	Meter metrics.Meter
	Log   *slog.Logger
}

// Counter makes an Int64Counter.
func (m Instruments) Counter(name, unit, desc string) metrics.Int64Counter {
	c, err := m.Meter.Int64Counter(name, describe(unit, desc))
	if err != nil || c == nil {
		m.failed(name, err)
		c, _ = metrics.NopMeterProvider{}.Meter("").Int64Counter(name)
	}
	return c
}

// Histogram makes a Float64Histogram.
func (m Instruments) Histogram(name, unit, desc string) metrics.Float64Histogram {
	h, err := m.Meter.Float64Histogram(name, describe(unit, desc))
	if err != nil || h == nil {
		m.failed(name, err)
		h, _ = metrics.NopMeterProvider{}.Meter("").Float64Histogram(name)
	}
	return h
}

func (m Instruments) failed(name string, err error) {
	if m.Log != nil {
		m.Log.Warn("dynoseal: metric instrument not created; recording nothing for it", "instrument", name, "error", err)
	}
}

func describe(unit, desc string) metrics.InstrumentOption {
	return func(o *metrics.InstrumentOptions) { o.UnitLabel, o.Description = unit, desc }
}

// Attrs sets metric attributes, given as key, value pairs.
func Attrs(kv ...string) metrics.RecordMetricOption {
	return func(o *metrics.RecordMetricOptions) {
		for i := 0; i+1 < len(kv); i += 2 {
			o.Properties.Set(kv[i], kv[i+1])
		}
	}
}
