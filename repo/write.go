package repo

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ErrConditionFailed matches (with errors.Is) every write whose condition did
// not hold. errors.As into a *[ConditionFailedError] gives the details.
var ErrConditionFailed = errors.New("dynoseal: condition failed")

// ConditionFailedError is returned by Put, Delete, DeleteReturning and Update
// when DynamoDB refused the write because its condition did not hold.
// Nothing was written. It matches [ErrConditionFailed] and wraps the SDK's
// *types.ConditionalCheckFailedException.
type ConditionFailedError[T any] struct {
	Op    string // "put", "delete" or "update"
	Table string
	Key   Key
	// Current is the item as it was when the condition failed, with its
	// encrypted fields opened. It is set (and HasCurrent true) only when the
	// write asked for it with [ReturnCurrentOnFailure] and an item existed.
	Current    T
	HasCurrent bool
	// Err is the error from DynamoDB.
	Err error

	// openErr says why Current could not be opened, if it could not.
	openErr error
}

func (e *ConditionFailedError[T]) Error() string {
	msg := fmt.Sprintf("repo %s: %s %v: %v", e.Table, e.Op, e.Key, ErrConditionFailed)
	if e.openErr != nil {
		msg += "; the current item could not be opened: " + e.openErr.Error()
	}
	return msg
}

// Unwrap gives ErrConditionFailed, the SDK's error and, if the current item
// could not be opened, why.
func (e *ConditionFailedError[T]) Unwrap() []error {
	errs := []error{ErrConditionFailed, e.Err}
	if e.openErr != nil {
		errs = append(errs, e.openErr)
	}
	return errs
}

// WriteOptions hold the knobs of the write operations. Each operation uses
// the ones that apply to it and rejects the others with an error, so a knob
// is never silently ignored.
type WriteOptions struct {
	// Conditions must all hold for the write to happen (Put, Delete, Update).
	// They may not compare encrypted attributes; existence checks are fine.
	Conditions []expression.ConditionBuilder
	// MustExist requires an item with the key to exist already.
	MustExist bool
	// MustNotExist requires that no item with the key exists yet.
	MustNotExist bool
	// ReturnCurrentOnFailure asks DynamoDB for the item as it is when a
	// condition fails; it comes back in [ConditionFailedError.Current].
	ReturnCurrentOnFailure bool
	// ReturnOld makes Update return the item as it was before the update.
	ReturnOld bool
	// ReturnNew makes Update return the item as it is after the update.
	ReturnNew bool
}

// WriteOption changes [WriteOptions].
type WriteOption func(*WriteOptions)

// If makes the write conditional on cond, built with the SDK's expression
// package. Several If options must all hold.
func If(cond expression.ConditionBuilder) WriteOption {
	return func(o *WriteOptions) { o.Conditions = append(o.Conditions, cond) }
}

// IfNotExists makes the write happen only if no item has the key yet: a Put
// that creates but never replaces.
func IfNotExists() WriteOption { return func(o *WriteOptions) { o.MustNotExist = true } }

// IfExists makes the write happen only if an item has the key already: a Put
// that replaces but never creates, an Update that never creates, a Delete
// that fails on a missing item.
func IfExists() WriteOption { return func(o *WriteOptions) { o.MustExist = true } }

// ReturnCurrentOnFailure asks for the current item when a condition fails,
// opened, in [ConditionFailedError.Current]. It costs KMS Decrypt calls only
// when a condition fails.
func ReturnCurrentOnFailure() WriteOption {
	return func(o *WriteOptions) { o.ReturnCurrentOnFailure = true }
}

// ReturnOld makes Update return the item as it was before the update.
func ReturnOld() WriteOption { return func(o *WriteOptions) { o.ReturnOld = true } }

// ReturnNew makes Update return the item as it is after the update.
func ReturnNew() WriteOption { return func(o *WriteOptions) { o.ReturnNew = true } }

type writeKnobs uint8

const (
	knobReturnOld writeKnobs = 1 << iota
	knobReturnNew
)

// writeOptions applies opts and rejects the knobs op does not take.
func writeOptions(op string, allowed writeKnobs, opts []WriteOption) (WriteOptions, error) {
	var o WriteOptions
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.ReturnOld && allowed&knobReturnOld == 0:
		return o, fmt.Errorf("repo: %s does not take ReturnOld", op)
	case o.ReturnNew && allowed&knobReturnNew == 0:
		return o, fmt.Errorf("repo: %s does not take ReturnNew", op)
	case o.ReturnOld && o.ReturnNew:
		return o, fmt.Errorf("repo: %s: ReturnOld and ReturnNew together", op)
	case o.MustExist && o.MustNotExist:
		return o, fmt.Errorf("repo: %s: IfExists and IfNotExists together", op)
	}
	return o, nil
}

// writeCondition is a write's conditions combined into one, checked, with
// the request fields it builds to.
type writeCondition struct {
	builder expression.ConditionBuilder // for Update, which builds it with its update
	expr    *string
	names   map[string]string
	values  map[string]types.AttributeValue
}

// condition combines the write's conditions into one, or returns nil when
// there are none. It rejects, before any request, a condition that compares
// an encrypted attribute.
func (r *Repo[T]) condition(op string, o WriteOptions) (*writeCondition, error) {
	conds := slices.Clone(o.Conditions)
	hash := expression.Name(r.hash.name)
	if o.MustExist {
		conds = append(conds, hash.AttributeExists())
	}
	if o.MustNotExist {
		conds = append(conds, hash.AttributeNotExists())
	}
	var c expression.ConditionBuilder
	switch len(conds) {
	case 0:
		return nil, nil
	case 1:
		c = conds[0]
	default:
		c = expression.And(conds[0], conds[1], conds[2:]...)
	}
	e, err := expression.NewBuilder().WithCondition(c).Build()
	if err != nil {
		return nil, fmt.Errorf("repo %s: %s: condition: %w", r.table, op, err)
	}
	if err := r.checkExpression(op+" condition", e.Condition(), e.Names()); err != nil {
		return nil, err
	}
	return &writeCondition{builder: c, expr: e.Condition(), names: e.Names(), values: e.Values()}, nil
}

func onFailure(o WriteOptions) types.ReturnValuesOnConditionCheckFailure {
	if o.ReturnCurrentOnFailure {
		return types.ReturnValuesOnConditionCheckFailureAllOld
	}
	return ""
}

// writeError turns a failed write into a *ConditionFailedError when its
// condition failed, opening the current item if the caller asked for it.
func (r *Repo[T]) writeError(ctx context.Context, op string, k Key, o WriteOptions, err error) error {
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return fmt.Errorf("repo %s: %s: %w", r.table, op, err)
	}
	cf := &ConditionFailedError[T]{Op: op, Table: r.table, Key: k, Err: err}
	if o.ReturnCurrentOnFailure && len(ccf.Item) > 0 {
		cur, openErr := r.Unmarshal(ctx, ccf.Item)
		if openErr != nil {
			cf.openErr = openErr
		} else {
			cf.Current, cf.HasCurrent = cur, true
		}
	}
	return cf
}

// keyOf returns the primary key of item, for error reports.
func (r *Repo[T]) keyOf(item T) Key {
	v := reflect.ValueOf(item)
	var k Key
	if f, err := v.FieldByIndexErr(r.hash.index); err == nil {
		k.Hash = f.Interface()
	}
	if r.rng != nil {
		if f, err := v.FieldByIndexErr(r.rng.index); err == nil {
			k.Range = f.Interface()
		}
	}
	return k
}

// DeleteReturning removes the item with key k and returns it as it was, with
// its encrypted fields opened. If no item had the key, nothing is deleted and
// the error is ErrNotFound. It takes the options of Delete.
func (r *Repo[T]) DeleteReturning(ctx context.Context, k Key, opts ...WriteOption) (T, error) {
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
	return r.Unmarshal(ctx, out.Attributes)
}

// deleteItem sends the DeleteItem request of Delete and DeleteReturning.
func (r *Repo[T]) deleteItem(ctx context.Context, k Key, o WriteOptions, ret types.ReturnValue) (*dynamodb.DeleteItemOutput, error) {
	cond, err := r.condition("delete", o)
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
	in := &dynamodb.DeleteItemInput{TableName: aws.String(r.table), Key: km, ReturnValues: ret, ReturnValuesOnConditionCheckFailure: onFailure(o)}
	if cond != nil {
		in.ConditionExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues = cond.expr, cond.names, cond.values
	}
	out, err := db.DeleteItem(ctx, in)
	if err != nil {
		return nil, r.writeError(ctx, "delete", k, o, err)
	}
	return out, nil
}

// marshalKeyInto sets the key fields of item from k, so that values sealed
// for the item can be bound to its key.
func (r *Repo[T]) marshalKeyInto(k Key, item *T) error {
	km, err := r.keyMap(k)
	if err != nil {
		return err
	}
	if err := attributevalue.UnmarshalMap(km, item); err != nil {
		return fmt.Errorf("repo %s: key %v does not fit the key fields of %s: %w", r.table, k, reflect.TypeFor[T](), err)
	}
	return nil
}
