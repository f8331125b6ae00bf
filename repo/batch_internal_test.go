package repo

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
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
		if got := chunk(c.sizes, c.maxCount, c.bytes); !reflect.DeepEqual(got, c.want) {
			t.Errorf("chunk(%v, %d, %d) = %v, want %v", c.sizes, c.maxCount, c.bytes, got, c.want)
		}
	}
	// DynamoDB's own limits: 25 items of 400 KB stay within 16 MB.
	sizes := make([]int, 60)
	for i := range sizes {
		sizes[i] = maxItemBytes
	}
	got := chunk(sizes, maxWritesPerRequest, maxRequestBytes)
	if len(got) != 3 || len(got[0]) != 25 || len(got[2]) != 10 {
		t.Fatalf("60 items of 400 KB in requests of %d, %d, %d", len(got[0]), len(got[1]), len(got[2]))
	}
	// Reads: 16 MB of 200 KB keys (not possible in DynamoDB, but the
	// accounting must hold) splits by bytes before the 100-key limit.
	sizes = make([]int, 120)
	for i := range sizes {
		sizes[i] = 200 << 10
	}
	got = chunk(sizes, maxKeysPerRequest, maxRequestBytes)
	if len(got) != 2 || len(got[0]) != 81 {
		t.Fatalf("split into %d requests, the first of %d keys; want 81 keys (16 MB / 200 KB)", len(got), len(got[0]))
	}
}

func TestItemSizeCountsLikeDynamoDB(t *testing.T) {
	item := map[string]types.AttributeValue{
		"pk":   &types.AttributeValueMemberS{Value: "héllo"},                                                                        // 2 + 6
		"n":    &types.AttributeValueMemberN{Value: "12345"},                                                                        // 1 + 3 + 1
		"b":    &types.AttributeValueMemberB{Value: []byte{1, 2, 3}},                                                                // 1 + 3
		"ok":   &types.AttributeValueMemberBOOL{Value: true},                                                                        // 2 + 1
		"null": &types.AttributeValueMemberNULL{Value: true},                                                                        // 4 + 1
		"ss":   &types.AttributeValueMemberSS{Value: []string{"a", "bc"}},                                                           // 2 + 3
		"l":    &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberS{Value: "xy"}}},              // 1 + 3 + 1 + 2
		"m":    &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: "v"}}}, // 1 + 3 + 1 + 1 + 1
	}
	if got, want := itemSize(item), 8+5+4+3+5+5+7+7; got != want {
		t.Fatalf("itemSize = %d, want %d", got, want)
	}
}

func TestBackoffIsCappedFullJitter(t *testing.T) {
	o := BatchOptions{BaseDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond}.withDefaults()
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
	d := BatchOptions{}.withDefaults()
	if d.Concurrency != 4 || d.BaseDelay != 50*time.Millisecond || d.MaxDelay != 5*time.Second {
		t.Fatalf("defaults %+v", d)
	}
}

func TestBatchErrorMessage(t *testing.T) {
	var keys []Key
	for i := range 12 {
		keys = append(keys, Key{Hash: "USER#" + fmt.Sprint(i)})
	}
	keys[1] = Key{Hash: 7, Range: []byte{0xab}}
	err := error(&BatchError{Op: "BatchPut", Table: "users", Unprocessed: keys, Total: 50, Err: context.DeadlineExceeded})
	msg := err.Error()
	for _, want := range []string{"repo users: BatchPut: 12 of 50 keys not processed", `{Hash:"USER#0"}`, "{Hash:7 Range:0xab}", `{Hash:"USER#9"}`, "and 2 more", "context deadline exceeded"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "USER#10") {
		t.Errorf("message lists more than 10 keys: %q", msg)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("cause not unwrapped")
	}
}
