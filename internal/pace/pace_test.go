package pace

import (
	"context"
	"testing"
	"time"
)

// Units are booked one after another at the rate: n units at rate r start
// n/r apart, whether waited for or charged afterwards.
func TestPacerBooksUnitsAtTheRate(t *testing.T) {
	now := time.Unix(1000, 0)
	p := New(10) // 10 units per second
	p.now = func() time.Time { return now }
	starts := []time.Time{p.reserve(5), p.reserve(5), p.reserve(1)}
	want := []time.Duration{0, 500 * time.Millisecond, time.Second}
	for i, s := range starts {
		if got := s.Sub(now); got != want[i] {
			t.Fatalf("booking %d starts after %v, want %v", i, got, want[i])
		}
	}
	p.Charge(10) // consumed beyond what was booked
	if got := p.reserve(1).Sub(now); got != 2100*time.Millisecond {
		t.Fatalf("after a charge of 10 units the next starts after %v, want 2.1s", got)
	}
	// Idle time is not saved up: after a pause, units start at once again.
	now = now.Add(time.Minute)
	if got := p.reserve(1); !got.Equal(now) {
		t.Fatalf("after a pause the next unit starts at %v, want now", got)
	}
}

func TestPacerWithoutRateAndEndedContext(t *testing.T) {
	var none *Pacer
	if err := none.Wait(context.Background(), 100); err != nil {
		t.Fatal(err)
	}
	if err := New(0).Wait(context.Background(), 1e9); err != nil {
		t.Fatal(err)
	}
	p := New(1)
	if err := p.Wait(context.Background(), 1); err != nil { // the first unit starts at once
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Wait(ctx, 1); err != context.Canceled {
		t.Fatalf("Wait with an ended context: %v", err)
	}
}
