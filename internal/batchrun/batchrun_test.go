package batchrun

import (
	"reflect"
	"testing"
	"time"
)

func TestChunkKeepsOrderWithinCountAndBytes(t *testing.T) {
	cases := []struct {
		sizes           []int
		maxCount, bytes int
		want            [][]int
	}{
		{nil, 25, 100, nil},
		{[]int{1, 1, 1, 1, 1}, 2, 100, [][]int{{0, 1}, {2, 3}, {4}}},
		{[]int{40, 40, 40, 10, 90, 5}, 25, 100, [][]int{{0, 1}, {2, 3}, {4, 5}}},
		// An entry alone over the byte limit still gets its own request;
		// BatchPut rejects such items before chunking.
		{[]int{150, 1}, 25, 100, [][]int{{0}, {1}}},
		{[]int{50, 50, 1}, 25, 100, [][]int{{0, 1}, {2}}},
	}
	for _, c := range cases {
		if got := Chunk(c.sizes, c.maxCount, c.bytes); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Chunk(%v, %d, %d) = %v, want %v", c.sizes, c.maxCount, c.bytes, got, c.want)
		}
	}
	// DynamoDB's own limits: 25 items of 400 KB stay within 16 MB.
	sizes := make([]int, 60)
	for i := range sizes {
		sizes[i] = 400 << 10
	}
	got := Chunk(sizes, 25, 16<<20)
	if len(got) != 3 || len(got[0]) != 25 || len(got[2]) != 10 {
		t.Fatalf("60 items of 400 KB in requests of %d, %d, %d", len(got[0]), len(got[1]), len(got[2]))
	}
	// Reads: 16 MB of 200 KB keys (not possible in DynamoDB, but the
	// accounting must hold) splits by bytes before the 100-key limit.
	sizes = make([]int, 120)
	for i := range sizes {
		sizes[i] = 200 << 10
	}
	got = Chunk(sizes, 100, 16<<20)
	if len(got) != 2 || len(got[0]) != 81 {
		t.Fatalf("split into %d requests, the first of %d keys; want 81 keys (16 MB / 200 KB)", len(got), len(got[0]))
	}
}

func TestBackoffIsCappedFullJitter(t *testing.T) {
	o := Limits{BaseDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond}
	for attempt := range 80 {
		ceiling := min(o.MaxDelay, o.BaseDelay<<min(attempt, 20))
		low := ceiling
		for range 200 {
			d := o.delay(attempt)
			if d < 0 || d > ceiling {
				t.Fatalf("attempt %d waited %v, want within [0, %v]", attempt, d, ceiling)
			}
			low = min(low, d)
		}
		if low > ceiling/2 {
			t.Fatalf("attempt %d: 200 waits all above %v: not jittered from 0", attempt, low)
		}
	}
}
