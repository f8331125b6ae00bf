package repo

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/internal/itemsize"
)

// ErrItemTooLarge is returned by Put, BatchPut and Marshal for an item,
// sealed, larger than DynamoDB's 400 KB item limit. Nothing of the call is
// written.
var ErrItemTooLarge = errors.New("dynoseal: item exceeds DynamoDB's 400 KB limit")

// Put writes item, replacing any item with the same key. Its new or changed
// encrypted values are sealed first; if sealing fails nothing is written.
// An item that cannot fit DynamoDB's 400 KB limit once sealed fails with
// ErrItemTooLarge, before any KMS call when its plaintexts already tell.
// It takes If, IfNotExists, IfExists and ReturnCurrentOnFailure; a
// condition that does not hold gives a *ConditionFailedError[T].
func (r *Repo[T]) Put(ctx context.Context, item T, opts ...WriteOption) (err error) {
	ctx, sp := r.trace(ctx, "Put", 1)
	defer sp.end(&err)
	o, err := writeOptions("Put", 0, opts)
	if err != nil {
		return err
	}
	db, err := r.db()
	if err != nil {
		return err
	}
	in, vc, err := r.putInput(ctx, item, o)
	if err != nil {
		return err
	}
	if _, err := db.PutItem(ctx, in); err != nil {
		return r.writeError(ctx, "put", r.keyOf(item), o, vc, err)
	}
	return nil
}

// putInput checks item and o, seals item and builds the request of Put.
func (r *Repo[T]) putInput(ctx context.Context, item T, o WriteOptions) (*dynamodb.PutItemInput, *versionCheck, error) {
	vc, err := r.putVersion("put", item, o)
	if err != nil {
		return nil, nil, err
	}
	cond, err := r.condition("put", o, vc)
	if err != nil {
		return nil, nil, err
	}
	stamp := func(_ int, m attrMap) error { stampVersion(m, vc); return nil }
	ms, _, err := r.marshalItems(ctx, "put", []T{item}, stamp)
	if err != nil {
		return nil, nil, err
	}
	in := &dynamodb.PutItemInput{TableName: aws.String(r.table), Item: ms[0], ReturnValuesOnConditionCheckFailure: onFailure(o, vc)}
	cond.apply(&in.ConditionExpression, &in.ExpressionAttributeNames, &in.ExpressionAttributeValues)
	return in, vc, nil
}

// tooLarge is the error of an item of size bytes, over DynamoDB's limit,
// naming its largest attribute: sealing makes a value about a third larger
// than its plaintext, which is easy to overlook. more adds to each
// attribute the least its values still to be sealed will take.
func (r *Repo[T]) tooLarge(op string, k Key, m attrMap, size int, more map[string]int) error {
	largest, largestSize := "", 0
	for name, v := range m {
		if n := len(name) + itemsize.Value(v) + more[name]; n > largestSize {
			largest, largestSize = name, n
		}
	}
	return fmt.Errorf("repo %s: %s %s: item is at least %d bytes, largest attribute %q is at least %d bytes: %w", r.table, op, k, size, largest, largestSize, ErrItemTooLarge)
}

// Get reads the item with key k and opens its encrypted fields. A missing
// item gives ErrNotFound; one that cannot be opened an *ItemError naming
// the attribute. It takes ConsistentRead, Project and SkipExpired (an
// expired item is not opened and gives ErrNotFound).
func (r *Repo[T]) Get(ctx context.Context, k Key, opts ...ReadOption) (_ T, err error) {
	ctx, sp := r.trace(ctx, "Get", 1)
	defer sp.end(&err)
	var zero T
	o, now, err := r.reading("Get", knobProject|knobSkipExpired, opts)
	if err != nil {
		return zero, err
	}
	db, err := r.db()
	if err != nil {
		return zero, err
	}
	in, err := r.getInput(k, o, now)
	if err != nil {
		return zero, err
	}
	out, err := db.GetItem(ctx, in)
	if err != nil {
		return zero, fmt.Errorf("repo %s: get: %w", r.table, err)
	}
	if out.Item == nil || r.plan.expired(out.Item, now) {
		return zero, fmt.Errorf("repo %s: get %s: %w", r.table, k, ErrNotFound)
	}
	items, errs := r.openItems(ctx, r.encryptor, "get", []attrMap{out.Item}, false)
	return items[0], errs[0]
}

// getInput is Get's request; a projection brings the ttl attribute along
// when expired items are to be told apart (now is not zero).
func (r *Repo[T]) getInput(k Key, o ReadOptions, now expiry) (*dynamodb.GetItemInput, error) {
	km, err := r.keyMap(k)
	if err != nil {
		return nil, err
	}
	in := &dynamodb.GetItemInput{TableName: aws.String(r.table), Key: km, ConsistentRead: aws.Bool(o.ConsistentRead)}
	if in.ProjectionExpression, in.ExpressionAttributeNames, err = r.projectionOnly("get", o.Projection, r.plan.readTTL(now, nil)); err != nil {
		return nil, err
	}
	return in, nil
}

// Delete removes the item with key k. Deleting a missing item is not an
// error unless IfExists says so. It takes If, IfExists and
// ReturnCurrentOnFailure; a condition that does not hold gives a
// *ConditionFailedError[T]. DeleteReturning also returns the item.
func (r *Repo[T]) Delete(ctx context.Context, k Key, opts ...WriteOption) (err error) {
	ctx, sp := r.trace(ctx, "Delete", 1)
	defer sp.end(&err)
	o, err := writeOptions("Delete", 0, opts)
	if err != nil {
		return err
	}
	_, err = r.deleteItem(ctx, k, o, "")
	return err
}

// DeleteReturning removes the item with key k and returns it as it was, with
// its encrypted fields opened. If no item had the key, nothing is deleted and
// the error is ErrNotFound. It takes the options of Delete. The item is
// deleted whenever the error is nil; a value that cannot be opened (KMS
// unreachable, a damaged value) stays sealed, and its Value gives the reason.
func (r *Repo[T]) DeleteReturning(ctx context.Context, k Key, opts ...WriteOption) (_ T, err error) {
	ctx, sp := r.trace(ctx, "DeleteReturning", 1)
	defer sp.end(&err)
	var zero T
	o, err := writeOptions("DeleteReturning", 0, opts)
	if err != nil {
		return zero, err
	}
	out, err := r.deleteItem(ctx, k, o, types.ReturnValueAllOld)
	if err != nil {
		return zero, err
	}
	if len(out.Attributes) == 0 {
		return zero, fmt.Errorf("repo %s: delete %s: %w", r.table, k, ErrNotFound)
	}
	return r.returned(ctx, out.Attributes), nil
}

// returned opens an item a write returned. The write has happened, so
// nothing may fail: what does not open stays sealed with its reason.
func (r *Repo[T]) returned(ctx context.Context, m attrMap) T {
	items, _ := r.openItems(ctx, r.encryptor, "returned item", []attrMap{m}, true)
	return items[0]
}

// deleteItem sends the DeleteItem request of Delete and DeleteReturning.
func (r *Repo[T]) deleteItem(ctx context.Context, k Key, o WriteOptions, ret types.ReturnValue) (*dynamodb.DeleteItemOutput, error) {
	vc, err := r.optionVersion("delete", o)
	if err != nil {
		return nil, err
	}
	cond, err := r.condition("delete", o, vc)
	if err != nil {
		return nil, err
	}
	db, err := r.db()
	if err != nil {
		return nil, err
	}
	km, err := r.keyMap(k)
	if err != nil {
		return nil, err
	}
	in := &dynamodb.DeleteItemInput{TableName: aws.String(r.table), Key: km, ReturnValues: ret, ReturnValuesOnConditionCheckFailure: onFailure(o, vc)}
	cond.apply(&in.ConditionExpression, &in.ExpressionAttributeNames, &in.ExpressionAttributeValues)
	out, err := db.DeleteItem(ctx, in)
	if err != nil {
		return nil, r.writeError(ctx, "delete", k, o, vc, err)
	}
	return out, nil
}

// writeError turns a failed write into a *ConditionFailedError when its
// condition failed, with the current item opened if the caller asked for it.
func (r *Repo[T]) writeError(ctx context.Context, op string, k Key, o WriteOptions, vc *versionCheck, err error) error {
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return fmt.Errorf("repo %s: %s: %w", r.table, op, err)
	}
	cf := &ConditionFailedError[T]{Op: op, Table: r.table, Key: k, VersionConflict: vc.conflict(ccf.Item), Err: err}
	if o.ReturnCurrentOnFailure && len(ccf.Item) > 0 {
		cf.Current, cf.HasCurrent = r.returned(ctx, ccf.Item), true
	}
	return cf
}
