package repo

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/internal/attrkind"
	"github.com/dynoseal/dynoseal/internal/number"
)

// ErrVersionConflict matches (with errors.Is) a write refused because the
// stored item's version (the field tagged `repo:"version"`) was not the one
// the write expected: someone else wrote the item since it was read. It
// comes with [ErrConditionFailed]; nothing was written.
var ErrVersionConflict = errors.New("dynoseal: version conflict")

// IfVersion makes Update or Delete (and TxUpdate, TxDelete) happen only if
// the stored item's version is v, the version of the item as it was read.
// Version 0 means that no item has the key, or that the one there has no
// version yet. Put takes the version from the item itself and refuses this
// option.
func IfVersion(v int64) WriteOption { return func(o *WriteOptions) { o.Version = &v } }

// checkVersion checks the field of `repo:"version"`: an integer stored as a
// DynamoDB number, which writes compare and increase.
func checkVersion(f *attr) error {
	switch f.typ.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
	default:
		return fmt.Errorf("repo: field %s: a `repo:\"version\"` field must be an integer, not %s", f.goName, f.typ)
	}
	av, err := marshalAs(f, reflect.ValueOf(1).Convert(f.typ))
	if err != nil {
		return fmt.Errorf("repo: field %s: %w", f.goName, err)
	}
	if _, ok := av.(*types.AttributeValueMemberN); av != nil && !ok {
		return fmt.Errorf("repo: field %s: a `repo:\"version\"` field must be stored as a number, not %s (remove the ,string option)", f.goName, attrkind.Of(av))
	}
	return nil
}

// versionCheck is what a write expects of the stored item's version.
type versionCheck struct {
	name     string
	expected int64
	// alone says the version is the write's only condition, so any
	// condition failure is a version conflict.
	alone bool
}

// condition is the condition DynamoDB checks for vc.
func (vc *versionCheck) condition() expression.ConditionBuilder {
	if vc.expected == 0 {
		return expression.Name(vc.name).AttributeNotExists()
	}
	return expression.Name(vc.name).Equal(expression.Value(vc.expected))
}

// conflict says whether a failed write with vc failed on its version,
// judging by the item DynamoDB returned with the failure (empty when none
// exists or none was returned).
func (vc *versionCheck) conflict(current attrMap) bool {
	switch {
	case vc == nil:
		return false
	case vc.alone:
		return true
	case len(current) == 0:
		return vc.expected != 0
	}
	return !vc.holds(current)
}

func (vc *versionCheck) holds(m attrMap) bool {
	av, ok := m[vc.name]
	if vc.expected == 0 {
		return !ok
	}
	n, ok := av.(*types.AttributeValueMemberN)
	if !ok {
		return false
	}
	got, err := number.Canonical(n.Value)
	want, _ := number.Canonical(strconv.FormatInt(vc.expected, 10))
	return err == nil && got == want
}

// itemVersion returns the version of item, which Put expects stored.
func (r *Repo[T]) itemVersion(item T) (int64, error) {
	f := reflect.ValueOf(item).FieldByIndex(r.plan.version.index)
	var v int64
	var ok bool
	if f.CanInt() {
		v = f.Int()
		ok = v >= 0 && v < math.MaxInt64
	} else {
		u := f.Uint()
		v, ok = int64(u), u < math.MaxInt64
	}
	if !ok || overflows(f.Type(), v+1) {
		return 0, fmt.Errorf("repo %s: put %s: field %s: version %v has no next version in %s", r.table, r.keyOf(item), r.plan.version.goName, f.Interface(), f.Type())
	}
	return v, nil
}

func overflows(t reflect.Type, n int64) bool {
	z := reflect.New(t).Elem()
	if z.CanInt() {
		return z.OverflowInt(n)
	}
	return z.OverflowUint(uint64(n))
}

// putVersion is what Put of item expects of the stored version: the item's
// own; nil when T has no version field.
func (r *Repo[T]) putVersion(op string, item T, o WriteOptions) (*versionCheck, error) {
	if r.plan.version == nil {
		return r.noVersion(op, o)
	}
	if o.Version != nil {
		return nil, fmt.Errorf("repo %s: %s: IfVersion: the version is taken from the item's field %s", r.table, op, r.plan.version.goName)
	}
	v, err := r.itemVersion(item)
	if err != nil {
		return nil, err
	}
	if err := r.checkExistence(op, item, v, o); err != nil {
		return nil, err
	}
	return &versionCheck{name: r.plan.version.name, expected: v, alone: alone(o)}, nil
}

// checkExistence refuses existence options that contradict the version of
// an item to Put: an item read from the table (version > 0) exists.
func (r *Repo[T]) checkExistence(op string, item T, v int64, o WriteOptions) error {
	switch {
	case v != 0 && o.MustNotExist:
		return fmt.Errorf("repo %s: %s %s: IfNotExists with an item of version %d, which was read from the table", r.table, op, r.keyOf(item), v)
	case v == 0 && o.MustExist:
		return fmt.Errorf("repo %s: %s %s: IfExists with an item of version 0, which is new", r.table, op, r.keyOf(item))
	}
	return nil
}

// optionVersion is what Update or Delete expects of the stored version:
// IfVersion's, if given.
func (r *Repo[T]) optionVersion(op string, o WriteOptions) (*versionCheck, error) {
	if r.plan.version == nil || o.Version == nil {
		return r.noVersion(op, o)
	}
	if *o.Version < 0 {
		return nil, fmt.Errorf("repo %s: %s: IfVersion(%d): versions are not negative", r.table, op, *o.Version)
	}
	return &versionCheck{name: r.plan.version.name, expected: *o.Version, alone: alone(o)}, nil
}

func (r *Repo[T]) noVersion(op string, o WriteOptions) (*versionCheck, error) {
	if o.Version != nil {
		return nil, fmt.Errorf("repo %s: %s: IfVersion: %s has no `repo:\"version\"` field", r.table, op, r.plan.typ)
	}
	return nil, nil
}

// alone says whether o adds no condition of its own to a version check.
func alone(o WriteOptions) bool {
	return len(o.Conditions) == 0 && !o.MustExist && !o.MustNotExist
}

// stampVersion stores the version a write of m makes: one more than vc
// expects.
func stampVersion(m attrMap, vc *versionCheck) {
	if vc != nil {
		m[vc.name] = &types.AttributeValueMemberN{Value: strconv.FormatInt(vc.expected+1, 10)}
	}
}
