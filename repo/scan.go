package repo

import (
	"context"
	"fmt"
	"iter"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynoseal/dynoseal/enc"

	"github.com/dynoseal/dynoseal/internal/pagetoken"
)

const scanKnobs = knobFilter | knobIndex | knobLimit | knobSegments | knobProject | knobSkipExpired

// maxSegments is DynamoDB's largest TotalSegments.
const maxSegments = 1_000_000

// parallelScanWorkers bounds the segments a parallel scan reads at once; the
// others wait their turn. More rarely helps: a scan is bound by the table's
// throughput, not by goroutines.
const parallelScanWorkers = 16

// Scan reads every item of the table (or, with Index, of the index) and opens
// their encrypted fields one page at a time. As with Query, each distinct
// data key is decrypted once per range, across pages and segments.
//
// It takes Filter, Project, Index, ConsistentRead, Limit, PageSize,
// SkipExpired and Segments(n), which reads n segments concurrently (at most 16 at once) and
// yields every item exactly once, in no particular order; the segments share
// Limit, so they stop asking once enough items are on their way and open
// only the items returned. Segment(i, n) reads only segment i. Like Query it
// requests nothing until the range starts and nothing after the loop breaks;
// when a parallel scan's loop breaks, it waits for the requests other
// segments have in flight (without opening their items) before the loop ends.
func (r *Repo[T]) Scan(ctx context.Context, opts ...ReadOption) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		ctx, yield, done := r.traceSeq(ctx, "Scan", yield)
		defer done()
		var zero T
		s, err := r.newScan("scan", opts, false)
		if err != nil {
			yield(zero, err)
			return
		}
		if s.o.Segments > 1 && !s.o.oneSegment {
			r.scanParallel(ctx, s, yield)
			return
		}
		r.stream(ctx, s.reader(s.o.Segment, s.o.Segments), yield)
	}
}

// ScanPage reads one page of a scan, starting after token ("" for the first
// page), and returns its items and the token of the next page. Pages follow
// the rules of QueryPage. It reads one segment: the whole table, or with
// Segment(i, n) segment i, so n workers can each page through their own.
// A token is refused with ErrInvalidToken when it was not made by a scan of
// the same table, index and segment.
func (r *Repo[T]) ScanPage(ctx context.Context, token string, opts ...ReadOption) (p Page[T], err error) {
	ctx, sp := r.trace(ctx, "ScanPage", 0)
	defer endPage(sp, &p, &err)
	s, err := r.newScan("scan page", opts, true)
	if err != nil {
		return Page[T]{}, err
	}
	if s.o.Segments > 1 && !s.o.oneSegment {
		return Page[T]{}, fmt.Errorf("repo %s: scan page: reads one segment at a time: use Segment(i, %d), not Segments(%d)", r.table, s.o.Segments, s.o.Segments)
	}
	return r.page(ctx, s.reader(s.o.Segment, s.o.Segments), token)
}

// scan is a checked scan request; reader makes the reader of one segment.
type scan struct {
	op   string
	o    ReadOptions
	db   API
	in   dynamodb.ScanInput
	base reader
}

func (r *Repo[T]) newScan(op string, opts []ReadOption, forPage bool) (*scan, error) {
	o, _, err := r.reading(op, scanKnobs, opts)
	if err != nil {
		return nil, err
	}
	if err := checkSizes(r.table, op, o); err != nil {
		return nil, err
	}
	switch {
	case o.Segments > maxSegments:
		return nil, fmt.Errorf("repo %s: %s: %d segments, DynamoDB takes at most %d", r.table, op, o.Segments, maxSegments)
	case o.oneSegment && (o.Segment < 0 || o.Segment >= o.Segments):
		return nil, fmt.Errorf("repo %s: %s: segment %d is not one of 0..%d", r.table, op, o.Segment, o.Segments-1)
	}
	db, err := r.db()
	if err != nil {
		return nil, err
	}
	s := &scan{op: op, o: o, db: db, in: dynamodb.ScanInput{TableName: aws.String(r.table)}}
	b, rd := r.readExpressions(expression.NewBuilder(), o, forPage)
	if len(o.Filters) > 0 || len(o.Projection) > 0 {
		e, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("repo %s: %s: %w", r.table, op, err)
		}
		if err := r.checkRead(op, e); err != nil {
			return nil, err
		}
		s.in.FilterExpression = e.Filter()
		s.in.ProjectionExpression = e.Projection()
		s.in.ExpressionAttributeNames = e.Names()
		s.in.ExpressionAttributeValues = e.Values()
	}
	s.in.IndexName = indexName(o)
	if o.ConsistentRead {
		s.in.ConsistentRead = aws.Bool(true)
	}
	rd.op = op
	s.base = *rd
	return s, nil
}

// reader reads segment seg of total; total 0 or 1 means the whole table.
func (s *scan) reader(seg, total int) *reader {
	rd := s.base
	in := s.in
	if total > 1 {
		in.Segment = aws.Int32(int32(seg))
		in.TotalSegments = aws.Int32(int32(total))
	} else {
		seg, total = 0, 1
	}
	rd.bind = pagetoken.NewScope([]byte("scan"), []byte(aws.ToString(in.TableName)), []byte(s.o.Index),
		[]byte(strconv.Itoa(seg)), []byte(strconv.Itoa(total)))
	rd.fetch = func(ctx context.Context, start attrMap, limit int32) ([]attrMap, attrMap, error) {
		req := in
		req.ExclusiveStartKey = start
		if limit > 0 {
			req.Limit = aws.Int32(limit)
		}
		out, err := s.db.Scan(ctx, &req)
		if err != nil {
			if total > 1 {
				err = fmt.Errorf("segment %d of %d: %w", seg, total, err)
			}
			return nil, nil, err
		}
		return out.Items, out.LastEvaluatedKey, nil
	}
	return &rd
}

// scanned is one opened page of a parallel scan, or the error that ended a segment.
type scanned[T any] struct {
	items []T
	errs  []error // per item: see openItems
	err   error
}

// scanParallel reads the segments in bounded concurrency; each worker pages
// through whole segments, opening each page itself so decryption runs in
// parallel too, and hands the pages to the consumer's goroutine, the only
// one that calls yield. The pages are opened in one session, so a data key
// is decrypted once for the whole scan, whichever worker needs it first.
//
// With a limit, the workers share a budget of the items still wanted: a
// worker asks DynamoDB for no more than the budget (without a filter), takes
// from it the items of a page before opening the page, cuts the page to
// what it took, and stops once the budget is spent. So only items that will
// be returned are decrypted, and no request starts once enough are on their
// way. Requests sent before the budget ran out still finish; their items are
// dropped unopened.
//
// When the loop ends early, workers start no new request and open no new
// page, but the requests already sent are left to finish rather than
// cancelled: the loop waits for them (one request's time at most), so
// nothing outlives the range, and their connections stay usable, where
// aborting a request mid-flight closes its connection. Cancelling ctx still
// aborts them.
func (r *Repo[T]) scanParallel(ctx context.Context, s *scan, yield func(T, error) bool) {
	ps := &parallelScan[T]{r: r, s: s, session: r.encryptor.Session(), pages: make(chan scanned[T]),
		stop: make(chan struct{}), budget: newItemBudget(s.o.Limit)}
	defer ps.session.Close() // deferred first: runs after the workers are done
	var wg sync.WaitGroup
	for range min(s.o.Segments, parallelScanWorkers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ps.work(ctx)
		}()
	}
	go func() {
		wg.Wait()
		close(ps.pages)
	}()
	defer func() {
		close(ps.stop)
		for range ps.pages {
		}
	}()
	ps.consume(ctx, yield)
}

// parallelScan is the state the workers and the consumer of one parallel
// scan share.
type parallelScan[T any] struct {
	r       *Repo[T]
	s       *scan
	session *enc.Session
	pages   chan scanned[T]
	stop    chan struct{} // closed when the consumer is done
	budget  *itemBudget
	next    atomic.Int64 // the next segment to read
}

func (ps *parallelScan[T]) stopped(ctx context.Context) bool {
	select {
	case <-ps.stop:
		return true
	default:
		return ctx.Err() != nil
	}
}

func (ps *parallelScan[T]) send(ctx context.Context, p scanned[T]) bool {
	select {
	case ps.pages <- p:
		return true
	case <-ps.stop:
	case <-ctx.Done():
	}
	return false
}

// work reads whole segments until none is left or the scan stops.
func (ps *parallelScan[T]) work(ctx context.Context) {
	total := ps.s.o.Segments
	for {
		seg := int(ps.next.Add(1) - 1)
		if seg >= total || !ps.segment(ctx, ps.s.reader(seg, total)) {
			return
		}
	}
}

// segment pages through one segment, opening each page; false when the
// scan stops.
func (ps *parallelScan[T]) segment(ctx context.Context, rd *reader) bool {
	var start attrMap
	for {
		left, limited := ps.budget.left()
		if ps.stopped(ctx) || (limited && left == 0) {
			return false
		}
		// Any segment may hold every item still wanted.
		items, last, err := rd.fetch(ctx, start, rd.streamLimit(left))
		if err != nil {
			ps.send(ctx, scanned[T]{err: ps.r.pageFailed(ctx, ps.s.op, err)})
			return false
		}
		if ps.stopped(ctx) {
			return false
		}
		if limited {
			items = items[:ps.budget.take(len(items))]
		}
		ts, errs := ps.r.openItems(ctx, ps.session, ps.s.op, items, false)
		if len(ts) > 0 && !ps.send(ctx, scanned[T]{items: ts, errs: errs}) {
			return false
		}
		if len(last) == 0 {
			return true
		}
		start = last
	}
}

// consume yields the pages' items on the caller's goroutine.
func (ps *parallelScan[T]) consume(ctx context.Context, yield func(T, error) bool) {
	var zero T
	yielded := 0
	for p := range ps.pages {
		if p.err != nil {
			yield(zero, p.err)
			return
		}
		for i, t := range p.items {
			if err := ctx.Err(); err != nil {
				yield(zero, ps.r.pageFailed(ctx, ps.s.op, err))
				return
			}
			if !yield(t, p.errs[i]) {
				return
			}
			if yielded++; yielded == ps.s.o.Limit {
				return
			}
		}
	}
	// Workers stop quietly when the context ends; say why the items stopped.
	if err := ctx.Err(); err != nil {
		yield(zero, ps.r.pageFailed(ctx, ps.s.op, err))
	}
}

// itemBudget is the number of items a parallel scan still wants, shared by
// its workers; unlimited when the scan has no limit.
type itemBudget struct {
	limited bool
	n       atomic.Int64
}

func newItemBudget(limit int) *itemBudget {
	b := &itemBudget{limited: limit > 0}
	b.n.Store(int64(limit))
	return b
}

// left returns the items still wanted and whether there is a limit at all.
func (b *itemBudget) left() (int, bool) {
	return int(b.n.Load()), b.limited
}

// take reserves up to n items and returns how many it got.
func (b *itemBudget) take(n int) int {
	for {
		left := b.n.Load()
		got := min(left, int64(n))
		if b.n.CompareAndSwap(left, left-got) {
			return int(got)
		}
	}
}
