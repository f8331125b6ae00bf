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

// CreateTable creates the repository's table with on-demand billing and the
// key schema of T, and waits until it is active. Change the request with fns
// (e.g. to add indexes).
func (r *Repo[T]) CreateTable(ctx context.Context, fns ...func(*dynamodb.CreateTableInput)) error {
	db, err := r.db()
	if err != nil {
		return err
	}
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(r.table),
		BillingMode: types.BillingModePayPerRequest,
	}
	for _, k := range []*attr{r.plan.hash, r.plan.rng} {
		if k == nil {
			continue
		}
		at, err := attributeType(k)
		if err != nil {
			return fmt.Errorf("repo %s: key %s: %w", r.table, k.name, err)
		}
		kt := types.KeyTypeHash
		if k == r.plan.rng {
			kt = types.KeyTypeRange
		}
		in.KeySchema = append(in.KeySchema, types.KeySchemaElement{AttributeName: aws.String(k.name), KeyType: kt})
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(k.name), AttributeType: at})
	}
	for _, fn := range fns {
		fn(in)
	}
	if _, err := db.CreateTable(ctx, in); err != nil {
		return fmt.Errorf("repo %s: create table: %w", r.table, err)
	}
	w := dynamodb.NewTableExistsWaiter(db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = 2 * time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(r.table)}, 2*time.Minute); err != nil {
		return fmt.Errorf("repo %s: wait for table: %w", r.table, err)
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
