package repo

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

const countKnobs = knobFilter | knobIndex | knobSkipExpired

// countPage counts one page of a count after start and returns where the
// next page starts.
type countPage func(ctx context.Context, start attrMap) (int32, attrMap, error)

// QueryCount counts the items Query would return, without reading them:
// DynamoDB counts (Select COUNT) and nothing is opened, so it makes no KMS
// call. It takes Filter, Index, ConsistentRead and SkipExpired (the filter
// Query would send, so the count agrees), and follows DynamoDB's pages (1 MB
// of items evaluated each) to the end.
func (r *Repo[T]) QueryCount(ctx context.Context, key expression.KeyConditionBuilder, opts ...ReadOption) (n int64, err error) {
	ctx, sp := r.trace(ctx, "QueryCount", 0)
	defer endCount(sp, &n, &err)
	const op = "query count"
	if !key.IsSet() {
		return 0, fmt.Errorf("repo %s: %s: no key condition", r.table, op)
	}
	o, e, db, err := r.countRequest(op, expression.NewBuilder().WithKeyCondition(key), true, opts)
	if err != nil {
		return 0, err
	}
	return r.count(ctx, op, func(ctx context.Context, start attrMap) (int32, attrMap, error) {
		out, err := db.Query(ctx, &dynamodb.QueryInput{TableName: aws.String(r.table), IndexName: indexName(o), Select: types.SelectCount,
			KeyConditionExpression: e.KeyCondition(), FilterExpression: e.Filter(), ExpressionAttributeNames: e.Names(),
			ExpressionAttributeValues: e.Values(), ConsistentRead: aws.Bool(o.ConsistentRead), ExclusiveStartKey: start})
		if err != nil {
			return 0, nil, err
		}
		return out.Count, out.LastEvaluatedKey, nil
	})
}

// ScanCount counts the items of the table (or, with Index, of the index)
// that Scan would return, the same way QueryCount does.
func (r *Repo[T]) ScanCount(ctx context.Context, opts ...ReadOption) (n int64, err error) {
	ctx, sp := r.trace(ctx, "ScanCount", 0)
	defer endCount(sp, &n, &err)
	const op = "scan count"
	o, e, db, err := r.countRequest(op, expression.NewBuilder(), false, opts)
	if err != nil {
		return 0, err
	}
	return r.count(ctx, op, func(ctx context.Context, start attrMap) (int32, attrMap, error) {
		out, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(r.table), IndexName: indexName(o), Select: types.SelectCount,
			FilterExpression: e.Filter(), ExpressionAttributeNames: e.Names(), ExpressionAttributeValues: e.Values(),
			ConsistentRead: aws.Bool(o.ConsistentRead), ExclusiveStartKey: start})
		if err != nil {
			return 0, nil, err
		}
		return out.Count, out.LastEvaluatedKey, nil
	})
}

// countRequest checks a count's options and builds its expressions: b's
// key condition (hasKey) and the filters. A scan without filters has none.
func (r *Repo[T]) countRequest(op string, b expression.Builder, hasKey bool, opts []ReadOption) (ReadOptions, expression.Expression, API, error) {
	var e expression.Expression
	o, _, err := r.reading(op, countKnobs, opts)
	if err != nil {
		return o, e, nil, err
	}
	if filter, ok := and(o.Filters); ok {
		b = b.WithFilter(filter)
	}
	if hasKey || len(o.Filters) > 0 {
		if e, err = b.Build(); err != nil {
			return o, e, nil, fmt.Errorf("repo %s: %s: %w", r.table, op, err)
		}
	}
	if err := r.checkRead(op, e); err != nil {
		return o, e, nil, err
	}
	db, err := r.db()
	return o, e, db, err
}

// count adds up the counts of every page.
func (r *Repo[T]) count(ctx context.Context, op string, page countPage) (int64, error) {
	var total int64
	var start attrMap
	for {
		n, last, err := page(ctx, start)
		if err != nil {
			return 0, r.pageFailed(ctx, op, err)
		}
		total += int64(n)
		if len(last) == 0 {
			return total, nil
		}
		start = last
	}
}

func indexName(o ReadOptions) *string {
	if o.Index == "" {
		return nil
	}
	return aws.String(o.Index)
}
