package repo

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// CreateTable creates the repository's table with on-demand billing, the
// key schema of T and the secondary indexes T declares (`repo:"gsi:..."`,
// `repo:"lsi:..."`, projected as WithIndexProjection says), and waits until
// it is active. fns change the request last, e.g. to set provisioned
// throughput or stream settings.
//
// It is meant for tests, local development and tools: production tables
// are better kept with the rest of the infrastructure (CloudFormation,
// Terraform, CDK).
func (r *Repo[T]) CreateTable(ctx context.Context, fns ...func(*dynamodb.CreateTableInput)) (err error) {
	ctx, sp := r.trace(ctx, "CreateTable", 0)
	defer sp.end(&err)
	db, err := r.db()
	if err != nil {
		return err
	}
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(r.table),
		BillingMode: types.BillingModePayPerRequest,
	}
	if err := r.plan.tableSchema(in); err != nil {
		return fmt.Errorf("repo %s: create table: %w", r.table, err)
	}
	for _, fn := range fns {
		fn(in)
	}
	if _, err := db.CreateTable(ctx, in); err != nil {
		return fmt.Errorf("repo %s: create table: %w", r.table, err)
	}
	w := dynamodb.NewTableExistsWaiter(db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = tablePollMin, tablePollMax
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(r.table)}, tableWait); err != nil {
		return fmt.Errorf("repo %s: wait for table: %w", r.table, err)
	}
	return nil
}

// The waits for a table to appear or go: short polls, as local emulators
// answer at once and tests should not sleep for DynamoDB's default 20 s.
const (
	tablePollMin = 100 * time.Millisecond
	tablePollMax = 2 * time.Second
	tableWait    = 2 * time.Minute
)

// DescribeTable returns DynamoDB's description of the table: its status,
// key schema, indexes, item count and so on.
func (r *Repo[T]) DescribeTable(ctx context.Context) (_ *types.TableDescription, err error) {
	ctx, sp := r.trace(ctx, "DescribeTable", 0)
	defer sp.end(&err)
	db, err := r.db()
	if err != nil {
		return nil, err
	}
	out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(r.table)})
	if err != nil {
		return nil, fmt.Errorf("repo %s: describe table: %w", r.table, err)
	}
	return out.Table, nil
}

// DeleteTable deletes the table with every item in it and waits until it
// is gone. Like CreateTable, it is meant for tests and tools.
func (r *Repo[T]) DeleteTable(ctx context.Context) (err error) {
	ctx, sp := r.trace(ctx, "DeleteTable", 0)
	defer sp.end(&err)
	db, err := r.db()
	if err != nil {
		return err
	}
	if _, err := db.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(r.table)}); err != nil {
		return fmt.Errorf("repo %s: delete table: %w", r.table, err)
	}
	w := dynamodb.NewTableNotExistsWaiter(db, func(o *dynamodb.TableNotExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = tablePollMin, tablePollMax
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(r.table)}, tableWait); err != nil {
		return fmt.Errorf("repo %s: wait for table deletion: %w", r.table, err)
	}
	return nil
}

// attributeType is the DynamoDB type a key is stored as: the field's own
// type, unless its options say otherwise (",string" stores a number as S).
func attributeType(k *attr) (types.ScalarAttributeType, error) {
	if av, err := marshalAs(k, reflect.Zero(k.typ)); err == nil {
		switch av.(type) {
		case *types.AttributeValueMemberS:
			return types.ScalarAttributeTypeS, nil
		case *types.AttributeValueMemberN:
			return types.ScalarAttributeTypeN, nil
		case *types.AttributeValueMemberB:
			return types.ScalarAttributeTypeB, nil
		}
	}
	return scalarType(k.typ)
}
