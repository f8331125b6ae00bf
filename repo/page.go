package repo

import (
	"context"
	"fmt"
	"math"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"

	"github.com/dynoseal/dynoseal/internal/pagetoken"
)

// ErrInvalidToken is returned by QueryPage and ScanPage for a page token that
// they did not make, that was damaged, or that belongs to another query or
// scan (another table, index, key condition, order or segment). Tokens are
// URL-safe and checked, not encrypted: they reveal the key values of the last
// item read, as DynamoDB's LastEvaluatedKey does, and the check guards
// against mix-ups and damage, not against a forger.
var ErrInvalidToken = pagetoken.ErrInvalid

// Page is one page of a query or scan read with QueryPage or ScanPage. When
// some items of a page cannot be opened, QueryPage and ScanPage return the
// page with the others together with an error joining an *ItemError for
// each; Next still continues after the whole page.
type Page[T any] struct {
	// Items are the page's items, their encrypted fields opened.
	Items []T
	// Next continues the read after the last item: pass it back, with the
	// same key condition, index, order and segment, to get the next page.
	// It is "" when nothing is left. It is URL-safe and opaque; see
	// ErrInvalidToken for the tokens that are refused.
	Next string
}

// fetchFunc sends one Query or Scan request that starts after start (nil:
// at the beginning) and evaluates at most limit items (0: no limit).
type fetchFunc func(ctx context.Context, start attrMap, limit int32) (items []attrMap, last attrMap, err error)

// reader is one prepared query or scan: the request is built and checked,
// only the start key and the request limit change from request to request.
type reader struct {
	op       string // "query", "scan", ... for errors
	limit    int    // items returned in all; 0: no limit
	pageSize int    // DynamoDB's Limit per request; 0: DynamoDB's 1 MB page
	filtered bool
	bind     pagetoken.Scope
	// keyNames are the attributes of the table's primary key. With them a
	// page can end after any item and continue from that item's key, which
	// is exactly what DynamoDB would return as LastEvaluatedKey there. They
	// are nil for reads of an index, whose key attributes the item type does
	// not tell; pages of those are sized so they never need cutting.
	keyNames []string
	fetch    fetchFunc
}

// streamLimit is DynamoDB's Limit for the next request of an iterator that
// still wants remaining items. Without a filter every evaluated item is
// returned, so asking for more than remaining would read (and pay for) items
// that are thrown away. With a filter, DynamoDB's Limit counts items before
// the filter, so shrinking it would only mean more requests.
func (rd *reader) streamLimit(remaining int) int32 {
	n := rd.pageSize
	if rd.limit > 0 && !rd.filtered && (n == 0 || remaining < n) {
		n = remaining
	}
	return int32(n)
}

// pageLimit is DynamoDB's Limit for the next request of a page that still
// wants remaining items. A page may overshoot only when it can be cut at an
// item's key.
func (rd *reader) pageLimit(remaining int) int32 {
	n := rd.pageSize
	if rd.limit > 0 && (!rd.filtered || rd.keyNames == nil) && (n == 0 || remaining < n) {
		n = remaining
	}
	return int32(n)
}

// checkSizes rejects sizes DynamoDB's int32 Limit cannot carry.
func checkSizes(table, op string, o ReadOptions) error {
	if o.PageSize > math.MaxInt32 {
		return fmt.Errorf("repo %s: %s: page size %d is above DynamoDB's largest Limit", table, op, o.PageSize)
	}
	return nil
}

// pageFailed wraps a request failure with the table and operation; when the
// context ended, its error is the cause, not the SDK's wrapping of it.
func (r *Repo[T]) pageFailed(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return fmt.Errorf("repo %s: %s: %w", r.table, op, err)
}

// stream yields the items of rd, requesting pages as the consumer asks for
// items and never after it stops. Its pages are opened in one session, so a
// data key is decrypted once for the whole iteration, not once per page.
func (r *Repo[T]) stream(ctx context.Context, rd *reader, yield func(T, error) bool) {
	session := r.encryptor.Session()
	defer session.Close()
	var zero T
	var start attrMap
	remaining := rd.limit
	for {
		if err := ctx.Err(); err != nil {
			yield(zero, r.pageFailed(ctx, rd.op, err))
			return
		}
		items, last, err := rd.fetch(ctx, start, rd.streamLimit(remaining))
		if err != nil {
			yield(zero, r.pageFailed(ctx, rd.op, err))
			return
		}
		if rd.limit > 0 && len(items) >= remaining {
			// Open only what will be returned.
			items, last = items[:remaining], nil
		}
		ts, errs := r.openItems(ctx, session, rd.op, items, false)
		for i, t := range ts {
			if err := ctx.Err(); err != nil {
				yield(zero, r.pageFailed(ctx, rd.op, err))
				return
			}
			if !yield(t, errs[i]) {
				return
			}
		}
		remaining -= len(ts)
		if len(last) == 0 {
			return
		}
		start = last
	}
}

// page reads one page of rd after token: with a limit, requests until it
// has that many items or nothing is left; without one, a single request.
func (r *Repo[T]) page(ctx context.Context, rd *reader, token string) (Page[T], error) {
	var start attrMap
	if token != "" {
		var err error
		if start, err = pagetoken.Decode(token, rd.bind); err != nil {
			return Page[T]{}, fmt.Errorf("repo %s: %s: %w", r.table, rd.op, err)
		}
	}
	raw, start, err := r.fetchPage(ctx, rd, start)
	if err != nil {
		return Page[T]{}, err
	}
	opened, errs := r.openItems(ctx, r.encryptor, rd.op, raw, false)
	p := Page[T]{Items: make([]T, 0, len(opened))}
	for i, t := range opened {
		if errs[i] == nil {
			p.Items = append(p.Items, t)
		}
	}
	if len(start) > 0 {
		if p.Next, err = pagetoken.Encode(rd.bind, start); err != nil {
			return Page[T]{}, fmt.Errorf("repo %s: %s: page token: %w", r.table, rd.op, err)
		}
	}
	return p, joinErrors(errs)
}

// fetchPage requests the items of one page after start: with a limit, until
// it has that many items or nothing is left; without one, once. It returns
// them and where the next page starts.
func (r *Repo[T]) fetchPage(ctx context.Context, rd *reader, start attrMap) ([]attrMap, attrMap, error) {
	var raw []attrMap
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, r.pageFailed(ctx, rd.op, err)
		}
		items, last, err := rd.fetch(ctx, start, rd.pageLimit(rd.limit-len(raw)))
		if err != nil {
			return nil, nil, r.pageFailed(ctx, rd.op, err)
		}
		raw, start = append(raw, items...), last
		if rd.limit > 0 && len(raw) > rd.limit {
			// Only a filtered read of the table gets here (see pageLimit):
			// continue after the last item kept, from its primary key.
			raw = raw[:rd.limit]
			if start, err = keyAttributes(raw[len(raw)-1], rd.keyNames); err != nil {
				return nil, nil, fmt.Errorf("repo %s: %s: %w", r.table, rd.op, err)
			}
		}
		if len(start) == 0 || rd.limit == 0 || len(raw) == rd.limit {
			return raw, start, nil
		}
	}
}

// keyAttributes returns the attributes of item that names name: its key, to
// continue a read after it.
func keyAttributes(item attrMap, names []string) (attrMap, error) {
	key := make(attrMap, len(names))
	for _, n := range names {
		v, ok := item[n]
		if !ok {
			return nil, fmt.Errorf("item lacks key attribute %q to continue from", n)
		}
		key[n] = v
	}
	return key, nil
}

// readExpressions adds the filter and projection of o to b. A page that may
// end mid-response (a filtered read of the table with a limit) also projects
// the table's key attributes, to continue from the last item's key.
func (r *Repo[T]) readExpressions(b expression.Builder, o ReadOptions, forPage bool) (expression.Builder, *reader) {
	rd := &reader{limit: o.Limit, pageSize: o.PageSize, filtered: len(o.Filters) > 0}
	if o.Index == "" {
		rd.keyNames = r.plan.keyNames()
	}
	if filter, ok := and(o.Filters); ok {
		b = b.WithFilter(filter)
	}
	var keys []string
	if forPage && rd.filtered && rd.limit > 0 {
		keys = rd.keyNames
	}
	return r.withProjection(b, o.Projection, keys), rd
}

// checkRead rejects a key condition or filter that compares an encrypted
// attribute, before any request.
func (r *Repo[T]) checkRead(op string, e expression.Expression) error {
	if err := r.checkExpression(op+" key condition", e.KeyCondition(), e.Names()); err != nil {
		return err
	}
	return r.checkExpression(op+" filter", e.Filter(), e.Names())
}
