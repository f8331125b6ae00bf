package repo

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynoseal/dynoseal/internal/pagetoken"
)

const queryKnobs = knobFilter | knobIndex | knobOrder | knobLimit | knobProject | knobSkipExpired

// Query reads the items whose primary key (or, with Index, index key)
// matches key, in sort-key order, and opens their encrypted fields one page
// at a time. Each distinct data key is decrypted once per range: the range
// remembers the data keys it has decrypted for its later pages, and wipes
// them when the loop ends.
//
//	for o, err := range orders.Query(ctx, expression.Key("customer").Equal(expression.Value("C#1")),
//		repo.Descending(), repo.Limit(10)) {
//		if err != nil { return err }
//		...
//	}
//
// It takes Filter, Project, Index, Descending, ConsistentRead, Limit (items
// returned in all), PageSize (items DynamoDB evaluates per request; it
// counts them before the filter) and SkipExpired (a filter too). Nothing is requested until the range
// starts, pages are requested as the loop needs them, and none after it
// breaks. Each range runs the query anew.
//
// An item that cannot be opened (a damaged value, a Decrypt KMS refuses)
// is yielded as an *ItemError naming its key and attribute, and the
// sequence goes on with the next item if the loop continues. Any other
// error ends the sequence: bad options, a key condition or filter that
// compares an encrypted attribute (ErrEncryptedComparison, found before any
// request), a failed request (wrapping the SDK's error) or an ended context
// (wrapping ctx.Err()).
func (r *Repo[T]) Query(ctx context.Context, key expression.KeyConditionBuilder, opts ...ReadOption) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		ctx, yield, done := r.traceSeq(ctx, "Query", yield)
		defer done()
		rd, err := r.queryReader("query", key, opts, false)
		if err != nil {
			var zero T
			yield(zero, err)
			return
		}
		r.stream(ctx, rd, yield)
	}
}

// QueryPage reads one page of the query that Query would run, starting after
// token ("" for the first page), and returns its items and the token of the
// next page.
//
// With Limit(n) a page holds n items unless the query ends first; without
// it, a page is what one DynamoDB request returns (at most PageSize items
// evaluated, at most 1 MB), which a filter can leave empty while Next is not.
// A token is refused with ErrInvalidToken when it was not made by a query on
// the same table, index, key condition and order.
func (r *Repo[T]) QueryPage(ctx context.Context, key expression.KeyConditionBuilder, token string, opts ...ReadOption) (p Page[T], err error) {
	ctx, sp := r.trace(ctx, "QueryPage", 0)
	defer endPage(sp, &p, &err)
	rd, err := r.queryReader("query page", key, opts, true)
	if err != nil {
		return Page[T]{}, err
	}
	return r.page(ctx, rd, token)
}

func (r *Repo[T]) queryReader(op string, key expression.KeyConditionBuilder, opts []ReadOption, forPage bool) (*reader, error) {
	o, _, err := r.reading(op, queryKnobs, opts)
	if err != nil {
		return nil, err
	}
	if err := checkSizes(r.table, op, o); err != nil {
		return nil, err
	}
	if !key.IsSet() {
		return nil, fmt.Errorf("repo %s: %s: no key condition", r.table, op)
	}
	db, err := r.db()
	if err != nil {
		return nil, err
	}
	b, rd := r.readExpressions(expression.NewBuilder().WithKeyCondition(key), o, forPage)
	e, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("repo %s: %s: %w", r.table, op, err)
	}
	if err := r.checkRead(op, e); err != nil {
		return nil, err
	}
	if rd.bind, err = r.queryBinding(key, o); err != nil {
		return nil, fmt.Errorf("repo %s: %s: %w", r.table, op, err)
	}
	rd.op = op
	in := dynamodb.QueryInput{
		TableName:                 aws.String(r.table),
		KeyConditionExpression:    e.KeyCondition(),
		FilterExpression:          e.Filter(),
		ProjectionExpression:      e.Projection(),
		ExpressionAttributeNames:  e.Names(),
		ExpressionAttributeValues: e.Values(),
		ScanIndexForward:          aws.Bool(!o.Descending),
		IndexName:                 indexName(o),
	}
	if o.ConsistentRead {
		in.ConsistentRead = aws.Bool(true)
	}
	rd.fetch = func(ctx context.Context, start attrMap, limit int32) ([]attrMap, attrMap, error) {
		req := in
		req.ExclusiveStartKey = start
		if limit > 0 {
			req.Limit = aws.Int32(limit)
		}
		out, err := db.Query(ctx, &req)
		if err != nil {
			return nil, nil, err
		}
		return out.Items, out.LastEvaluatedKey, nil
	}
	return rd, nil
}

// queryBinding identifies the query a page token may continue. The key
// condition is built on its own so that its placeholders do not depend on
// the filter or projection, which may change between pages.
func (r *Repo[T]) queryBinding(key expression.KeyConditionBuilder, o ReadOptions) (pagetoken.Scope, error) {
	e, err := expression.NewBuilder().WithKeyCondition(key).Build()
	if err != nil {
		return pagetoken.Scope{}, err
	}
	order := "asc"
	if o.Descending {
		order = "desc"
	}
	parts := [][]byte{[]byte("query"), []byte(r.table), []byte(o.Index), []byte(order), []byte(aws.ToString(e.KeyCondition()))}
	for _, ph := range slices.Sorted(maps.Keys(e.Names())) {
		parts = append(parts, []byte(ph), []byte(e.Names()[ph]))
	}
	values, err := pagetoken.AppendKey(nil, e.Values())
	if err != nil {
		return pagetoken.Scope{}, err
	}
	return pagetoken.NewScope(append(parts, values)...), nil
}
