package repo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

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

func TestBatchOptionDefaults(t *testing.T) {
	d := BatchOptions{}.withDefaults()
	if d.Concurrency != 4 || d.BaseDelay != 50e6 || d.MaxDelay != 5e9 {
		t.Fatalf("defaults %+v", d)
	}
	if o := (BatchOptions{BaseDelay: 2e9, MaxDelay: 1e9}).withDefaults(); o.MaxDelay != 2e9 {
		t.Fatalf("a maximum below the base is raised to it: %+v", o)
	}
}
