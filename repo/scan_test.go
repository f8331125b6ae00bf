package repo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/repo"
)

// exactlyOnce fails unless got holds 0..n-1 once each.
func exactlyOnce(t *testing.T, got []int, n int) {
	t.Helper()
	seen := map[int]int{}
	for _, sk := range got {
		seen[sk]++
	}
	for i := range n {
		if seen[i] != 1 {
			t.Fatalf("item %d returned %d times (%d items in all)", i, seen[i], len(got))
		}
	}
	if len(got) != n {
		t.Fatalf("%d items, want %d", len(got), n)
	}
}

func TestScanReadsTheTableInOrderOfPages(t *testing.T) {
	r, f := newFakeRepo(t, 50, 10)
	var got []int
	for a, err := range r.Scan(context.Background(), repo.PageSize(10), repo.ConsistentRead()) {
		if err != nil {
			t.Fatal(err)
		}
		checkAccount(t, a, a.SK)
		got = append(got, a.SK)
	}
	if fmt.Sprint(got) != fmt.Sprint(seqInts(0, 50, 1)) {
		t.Fatalf("items %v", got)
	}
	if n := len(f.scans); n != 6 || f.scans[0].Segment != nil || !aws.ToBool(f.scans[0].ConsistentRead) {
		t.Fatalf("%d scans, first %+v", n, f.scans[0])
	}
	if st := r.Encryptor().Stats(); st.DecryptCalls != 5 {
		t.Fatalf("%d Decrypt calls, want 5", st.DecryptCalls)
	}
}

func TestParallelScanYieldsEveryItemExactlyOnce(t *testing.T) {
	for _, segments := range []int{2, 7, 40} {
		t.Run(fmt.Sprint(segments), func(t *testing.T) {
			r, f := newFakeRepo(t, 200, 10)
			var got []int
			for a, err := range r.Scan(context.Background(), repo.Segments(segments), repo.PageSize(3)) {
				if err != nil {
					t.Fatal(err)
				}
				checkAccount(t, a, a.SK)
				got = append(got, a.SK)
			}
			exactlyOnce(t, got, 200)
			segs := map[int32]bool{}
			for _, in := range f.scans {
				if aws.ToInt32(in.TotalSegments) != int32(segments) {
					t.Fatalf("TotalSegments %d", aws.ToInt32(in.TotalSegments))
				}
				segs[aws.ToInt32(in.Segment)] = true
			}
			if len(segs) != segments {
				t.Fatalf("%d segments read, want %d", len(segs), segments)
			}
		})
	}
}

func TestParallelScanLimitAndFilter(t *testing.T) {
	r, f := newFakeRepo(t, 200, 10)
	f.match = func(it map[string]types.AttributeValue) bool { return sk(it)%3 == 0 }
	var got []int
	for a, err := range r.Scan(context.Background(), repo.Segments(4), repo.Limit(20), repo.PageSize(5),
		repo.Filter(expression.Name("name").BeginsWith("n"))) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.SK)
	}
	if len(got) != 20 {
		t.Fatalf("%d items, want 20", len(got))
	}
	for _, sk := range got {
		if sk%3 != 0 {
			t.Fatalf("filtered scan returned %d", sk)
		}
	}
	if u := slices.Compact(slices.Sorted(slices.Values(got))); len(u) != 20 {
		t.Fatalf("duplicates in %v", got)
	}
}

// With a limit, the segments share one budget of items: a parallel scan
// stops asking once enough items are on their way, and opens only the
// items it returns.
func TestParallelScanLimitSharesOneBudget(t *testing.T) {
	for _, segments := range []int{16, 40} {
		t.Run(fmt.Sprint(segments), func(t *testing.T) {
			r, f := newFakeRepo(t, 200, 10)
			var got []int
			for a, err := range r.Scan(context.Background(), repo.Segments(segments), repo.Limit(2)) {
				if err != nil {
					t.Fatal(err)
				}
				checkAccount(t, a, a.SK)
				got = append(got, a.SK)
			}
			if len(got) != 2 {
				t.Fatalf("%d items, want 2", len(got))
			}
			// Each worker sends at most one request: the first answer
			// spends the budget, and no request follows it. Requests
			// already sent finish, and their items are dropped unopened.
			perSegment := map[int32]int{}
			for _, in := range f.scans {
				perSegment[aws.ToInt32(in.Segment)]++
				if aws.ToInt32(in.Limit) != 2 {
					t.Fatalf("request Limit %d, want 2", aws.ToInt32(in.Limit))
				}
			}
			if n := len(f.scans); n > 16 {
				t.Fatalf("%d requests for 2 items, want at most one per worker (16)", n)
			}
			for seg, n := range perSegment {
				if n > 1 {
					t.Fatalf("segment %d read %d times", seg, n)
				}
			}
			// Items sk and sk+segments lie in two groups of 10: one page
			// opened, two data keys.
			if st := r.Encryptor().Stats(); st.DecryptCalls > 2 {
				t.Fatalf("%d Decrypt calls for 2 items, want at most 2", st.DecryptCalls)
			}
			t.Logf("%d requests, %d Decrypt calls", len(f.scans), r.Encryptor().Stats().DecryptCalls)
		})
	}
}

// Pages answered after the budget is spent are dropped without a Decrypt.
func TestParallelScanDropsLatePagesUnopened(t *testing.T) {
	r, b := newBlockingRepo(t, 80)
	var got []int
	for a, err := range r.Scan(context.Background(), repo.Segments(4), repo.Limit(3)) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.SK)
		if len(got) == 3 {
			// Segment 0 filled the budget; the other segments' requests,
			// if sent, answer now with pages nobody wants.
			close(b.release)
		}
	}
	if fmt.Sprint(got) != "[0 4 8]" {
		t.Fatalf("items %v, want segment 0's first three", got)
	}
	if running := b.running.Load(); running != 0 {
		t.Fatalf("%d requests still running after the loop ended", running)
	}
	if sent := b.sent.Load(); sent > 4 {
		t.Fatalf("%d requests, want at most one per segment", sent)
	}
	if st := r.Encryptor().Stats(); st.DecryptCalls != 1 {
		t.Fatalf("%d Decrypt calls, want 1: only segment 0's page is opened", st.DecryptCalls)
	}
}

// blockingDB answers segment 0 at once and holds the other segments'
// requests until release is closed or their context ends, counting the
// requests sent and still running.
type blockingDB struct {
	*fakeDB
	release chan struct{}
	sent    atomic.Int32
	running atomic.Int32
}

func newBlockingRepo(t *testing.T, n int) (*repo.Repo[Account], *blockingDB) {
	f := &fakeDB{}
	b := &blockingDB{fakeDB: f, release: make(chan struct{})}
	r, _ := newRepo(t, repo.WithClient(b))
	f.items = accountItems(t, r, n, 10)
	return r, b
}

func (b *blockingDB) Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	b.sent.Add(1)
	b.running.Add(1)
	defer b.running.Add(-1)
	if aws.ToInt32(in.Segment) != 0 {
		select {
		case <-b.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return b.fakeDB.Scan(ctx, in, opts...)
}

func TestParallelScanStopsItsWorkersWhenTheLoopBreaks(t *testing.T) {
	r, b := newBlockingRepo(t, 80)
	n := 0
	for _, err := range r.Scan(context.Background(), repo.Segments(4), repo.PageSize(2)) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		// The other segments' first requests are in flight: let them
		// answer after the loop has ended.
		close(b.release)
		break
	}
	if n != 1 {
		t.Fatalf("%d items", n)
	}
	if running := b.running.Load(); running != 0 {
		t.Fatalf("%d requests still running after the loop ended", running)
	}
	// At most one request per segment, and perhaps segment 0's second page,
	// fetched while the first was being consumed; none after the loop ended.
	if sent := b.sent.Load(); sent > 5 {
		t.Fatalf("%d requests, want at most 5", sent)
	}
}

func TestParallelScanStopsWithTheContextError(t *testing.T) {
	r, b := newBlockingRepo(t, 40)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errs []error
	for _, err := range r.Scan(ctx, repo.Segments(4)) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cancel()
	}
	if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
		t.Fatalf("errors %v, want one context.Canceled", errs)
	}
	if running := b.running.Load(); running != 0 {
		t.Fatalf("%d requests still running after the loop ended", running)
	}
}

func TestParallelScanReportsAFailedSegment(t *testing.T) {
	boom := errors.New("throttled")
	r, f := newFakeRepo(t, 40, 10)
	f.fail = func(_ context.Context, seg int) error {
		if seg == 2 {
			return boom
		}
		return nil
	}
	err := firstErr(r.Scan(context.Background(), repo.Segments(3)))
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "segment 2 of 3") || !strings.Contains(err.Error(), "accounts") {
		t.Fatalf("err = %v", err)
	}
}

func TestScanPageWalksOneSegmentWithTokens(t *testing.T) {
	ctx := context.Background()
	r, _ := newFakeRepo(t, 100, 10)
	var all []int
	for seg := range 3 {
		got, _ := pageAll(t, func(token string) (repo.Page[Account], error) {
			return r.ScanPage(ctx, token, repo.Segment(seg, 3), repo.Limit(4))
		})
		for _, sk := range got {
			if sk%3 != seg {
				t.Fatalf("segment %d returned item %d", seg, sk)
			}
		}
		all = append(all, got...)
	}
	exactlyOnce(t, all, 100)

	whole, pages := pageAll(t, func(token string) (repo.Page[Account], error) {
		return r.ScanPage(ctx, token, repo.PageSize(30))
	})
	if fmt.Sprint(whole) != fmt.Sprint(seqInts(0, 100, 1)) || pages != 4 {
		t.Fatalf("%d pages: %v", pages, whole)
	}
}

func TestScanOneSegment(t *testing.T) {
	r, f := newFakeRepo(t, 30, 10)
	var got []int
	for a, err := range r.Scan(context.Background(), repo.Segment(1, 4)) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.SK)
	}
	if fmt.Sprint(got) != fmt.Sprint(seqInts(1, 30, 4)) {
		t.Fatalf("items %v", got)
	}
	if len(f.scans) != 1 || aws.ToInt32(f.scans[0].Segment) != 1 || aws.ToInt32(f.scans[0].TotalSegments) != 4 {
		t.Fatalf("scans %+v", f.scans)
	}
}
