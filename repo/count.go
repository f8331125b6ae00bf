package repo

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

const countKnobs = knobFilter | knobIndex

// QueryCount counts the items Query would return, without reading them:
// DynamoDB counts (Select COUNT) and nothing is opened, so it makes no KMS
// call. It takes Filter, Index and ConsistentRead, and follows DynamoDB's
// pages (1 MB of items evaluated each) to the end.
func (r *Repo[T]) QueryCount(ctx context.Context, key expression.KeyConditionBuilder, opts ...ReadOption) (int64, error) {
	if !key.IsSet() {
		return 0, fmt.Errorf("repo %s: query count: no key condition", r.table)
	}
	return r.count(ctx, "query count", expression.NewBuilder().WithKeyCondition(key), opts)
}

// ScanCount counts the items of the table (or, with Index, of the index)
// that Scan would return, the same way QueryCount does.
func (r *Repo[T]) ScanCount(ctx context.Context, opts ...ReadOption) (int64, error) {
	return r.count(ctx, "scan count", expression.NewBuilder(), opts)
}

// count sends b, a query's key condition or nothing for a scan, with the
// filter of opts and Select COUNT, and adds up the counts of every page.
func (r *Repo[T]) count(ctx context.Context, op string, b expression.Builder, opts []ReadOption) (int64, error) {
	o, err := readOptions(op, countKnobs, opts)
	if err != nil {
		return 0, err
	}
	if len(o.Projection) > 0 {
		return 0, fmt.Errorf("repo: %s does not take a projection", op)
	}
	if filter, ok := and(o.Filters); ok {
		b = b.WithFilter(filter)
	}
	e, err := b.Build()
	if err != nil && (len(o.Filters) > 0 || op == "query count") {
		return 0, fmt.Errorf("repo %s: %s: %w", r.table, op, err)
	}
	if err := r.checkRead(op, e); err != nil {
		return 0, err
	}
	db, err := r.db()
	if err != nil {
		return 0, err
	}
	page := r.countPage(db, op, e, o)
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

// countPage returns the function that counts one page after start.
func (r *Repo[T]) countPage(db API, op string, e expression.Expression, o ReadOptions) func(context.Context, attrMap) (int32, attrMap, error) {
	var index *string
	if o.Index != "" {
		index = aws.String(o.Index)
	}
	consistent := aws.Bool(o.ConsistentRead)
	if op == "scan count" {
		return func(ctx context.Context, start attrMap) (int32, attrMap, error) {
			out, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(r.table), IndexName: index, Select: types.SelectCount,
				FilterExpression: e.Filter(), ExpressionAttributeNames: e.Names(), ExpressionAttributeValues: e.Values(),
				ConsistentRead: consistent, ExclusiveStartKey: start})
			if err != nil {
				return 0, nil, err
			}
			return out.Count, out.LastEvaluatedKey, nil
		}
	}
	return func(ctx context.Context, start attrMap) (int32, attrMap, error) {
		out, err := db.Query(ctx, &dynamodb.QueryInput{TableName: aws.String(r.table), IndexName: index, Select: types.SelectCount,
			KeyConditionExpression: e.KeyCondition(), FilterExpression: e.Filter(), ExpressionAttributeNames: e.Names(),
			ExpressionAttributeValues: e.Values(), ConsistentRead: consistent, ExclusiveStartKey: start})
		if err != nil {
			return 0, nil, err
		}
		return out.Count, out.LastEvaluatedKey, nil
	}
}
