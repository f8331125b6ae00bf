// Package pace spreads work over time at a set rate, for long runs that must not take a table's whole capacity.
package pace

import (
	"context"
	"sync"
	"time"
)

// Pacer lets work through at rate units per second on average. The zero
// rate lets everything through at once. It is safe for concurrent use.
type Pacer struct {
	rate float64
	now  func() time.Time

	mu   sync.Mutex
	next time.Time // when the next unit may start
}

// New returns a pacer of rate units per second; 0 means no limit.
func New(rate float64) *Pacer { return &Pacer{rate: rate, now: time.Now} }

// Wait waits until cost units may start, or ctx ends.
func (p *Pacer) Wait(ctx context.Context, cost float64) error {
	if p == nil || p.rate <= 0 {
		return ctx.Err()
	}
	start := p.reserve(cost)
	d := start.Sub(p.now())
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Charge counts cost units that were used without waiting for them (the
// capacity a write turned out to consume): later work waits for them.
func (p *Pacer) Charge(cost float64) {
	if p != nil && p.rate > 0 {
		p.reserve(cost)
	}
}

// reserve books cost units and returns when they may start.
func (p *Pacer) reserve(cost float64) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	start := p.next
	if start.Before(now) {
		start = now
	}
	p.next = start.Add(time.Duration(cost / p.rate * float64(time.Second)))
	return start
}
