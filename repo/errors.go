package repo

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned by Get when no item has the key.
var ErrNotFound = errors.New("dynoseal: item not found")

// ItemError reports an item that was read but could not be loaded: a value
// that does not fit its field, or an encrypted value that does not open.
// Query and Scan yield it for that item and go on with the next; BatchGet,
// QueryPage and ScanPage return the other items beside it. Err is the
// cause; for encrypted values an *enc.Error naming the attribute.
type ItemError struct {
	Table string
	Op    string // "get", "query", "scan", "batch get", ...
	Key   Key
	Err   error
}

func (e *ItemError) Error() string {
	return fmt.Sprintf("repo %s: %s %s: %v", e.Table, e.Op, e.Key, e.Err)
}

func (e *ItemError) Unwrap() error { return e.Err }

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
	// VersionConflict says the stored item's version was not the one the
	// write expected; the error then matches [ErrVersionConflict] too.
	VersionConflict bool
	// Err is the error from DynamoDB.
	Err error
}

func (e *ConditionFailedError[T]) Error() string {
	if e.VersionConflict {
		return fmt.Sprintf("repo %s: %s %v: %v: %v", e.Table, e.Op, e.Key, ErrConditionFailed, ErrVersionConflict)
	}
	return fmt.Sprintf("repo %s: %s %v: %v", e.Table, e.Op, e.Key, ErrConditionFailed)
}

// Unwrap gives ErrConditionFailed, ErrVersionConflict for a version
// conflict, and the SDK's error.
func (e *ConditionFailedError[T]) Unwrap() []error {
	if e.VersionConflict {
		return []error{ErrConditionFailed, ErrVersionConflict, e.Err}
	}
	return []error{ErrConditionFailed, e.Err}
}

func joinErrors(errs []error) error {
	var kept []error
	for _, err := range errs {
		if err != nil {
			kept = append(kept, err)
		}
	}
	if len(kept) == 1 {
		return kept[0]
	}
	return errors.Join(kept...)
}

// firstErrors joins the first n of errs and counts the rest, so that a
// call that fails for many items the same way says so in a few lines.
func firstErrors(errs []error, n int) error {
	if len(errs) <= n {
		return joinErrors(errs)
	}
	return errors.Join(append(errs[:n:n], fmt.Errorf("and %d more items", len(errs)-n))...)
}
