package repo

import (
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

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
	// Version, when set, is the version the stored item must have
	// (Update, Delete; see [IfVersion]).
	Version *int64
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
func (r *Repo[T]) condition(op string, o WriteOptions, vc *versionCheck) (*writeCondition, error) {
	conds := slices.Clone(o.Conditions)
	if vc != nil {
		conds = append(conds, vc.condition())
	}
	hash := expression.Name(r.plan.hash.name)
	if o.MustExist {
		conds = append(conds, hash.AttributeExists())
	}
	if o.MustNotExist {
		conds = append(conds, hash.AttributeNotExists())
	}
	c, ok := and(conds)
	if !ok {
		return nil, nil
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

// ReadOptions hold the knobs of the read operations. Each operation uses the
// ones that apply to it and rejects the others with an error, so a knob is
// never silently ignored.
type ReadOptions struct {
	// ConsistentRead asks for a strongly consistent read (Get, Query, Scan, BatchGet).
	ConsistentRead bool
	// Projection lists the attributes to return (Get, Query, Scan, BatchGet).
	// Encrypted attributes left out stay absent in the result. Encrypted
	// attributes included bring along what opening them takes: the key
	// attributes for version-2 specs and the attributes of ContextFrom.
	Projection []string
	// Filters drop items after they are read (Query, Scan); an item must
	// match all of them. They may not compare encrypted attributes.
	Filters []expression.ConditionBuilder
	// Index queries or scans a secondary index (Query, Scan).
	Index string
	// Descending returns items in descending sort-key order (Query).
	Descending bool
	// Limit caps the number of items returned in all (Query, Scan).
	Limit int
	// PageSize caps the items DynamoDB evaluates per request (Query, Scan).
	PageSize int
	// Segments scans the table in this many parallel segments (Scan).
	Segments int
	// Segment is the one segment of Segments to read, counting from 0, when
	// set with [Segment] (Scan, ScanPage).
	Segment    int
	oneSegment bool
	// SkipExpired leaves out items whose `repo:"ttl"` time has passed but
	// that DynamoDB has not deleted yet (every read but Unmarshal).
	SkipExpired bool
}

// ReadOption changes [ReadOptions].
type ReadOption func(*ReadOptions)

// ConsistentRead asks for a strongly consistent read.
func ConsistentRead() ReadOption { return func(o *ReadOptions) { o.ConsistentRead = true } }

// Project returns only the named attributes.
func Project(attrs ...string) ReadOption {
	return func(o *ReadOptions) { o.Projection = append(o.Projection, attrs...) }
}

// Filter drops the items that do not match cond. Several Filter options
// must all match, like several If options on a write.
func Filter(cond expression.ConditionBuilder) ReadOption {
	return func(o *ReadOptions) { o.Filters = append(o.Filters, cond) }
}

// Index reads the named secondary index instead of the table.
func Index(name string) ReadOption { return func(o *ReadOptions) { o.Index = name } }

// Descending returns items in descending sort-key order.
func Descending() ReadOption { return func(o *ReadOptions) { o.Descending = true } }

// Limit caps the number of items returned in all.
func Limit(n int) ReadOption { return func(o *ReadOptions) { o.Limit = n } }

// PageSize caps the items DynamoDB evaluates per request.
func PageSize(n int) ReadOption { return func(o *ReadOptions) { o.PageSize = n } }

// Segments scans in n parallel segments.
func Segments(n int) ReadOption { return func(o *ReadOptions) { o.Segments = n } }

// Segment reads only segment i (counting from 0) of a scan split into total
// segments, e.g. to share one scan out among several workers or processes.
func Segment(i, total int) ReadOption {
	return func(o *ReadOptions) { o.Segment, o.Segments, o.oneSegment = i, total, true }
}

// SkipExpired treats items whose `repo:"ttl"` time has passed (at the
// call) as absent, although DynamoDB, which deletes them only within a few
// days, still holds them: Get gives ErrNotFound, BatchGet leaves them out,
// and queries, scans and counts filter them out on the server. Expired
// items are never opened, so they cost no KMS call. A repository whose item
// type has no ttl field refuses it.
func SkipExpired() ReadOption { return func(o *ReadOptions) { o.SkipExpired = true } }

// readOptions applies opts and rejects the knobs op does not take.
func readOptions(op string, allowed readKnobs, opts []ReadOption) (ReadOptions, error) {
	var o ReadOptions
	for _, opt := range opts {
		opt(&o)
	}
	for _, k := range []struct {
		set  bool
		knob readKnobs
		name string
	}{
		{len(o.Filters) > 0, knobFilter, "a filter"},
		{o.Index != "", knobIndex, "an index"},
		{o.Descending, knobOrder, "an order"},
		{o.Limit != 0, knobLimit, "a limit"},
		{o.PageSize != 0, knobLimit, "a page size"},
		{o.Segments != 0 || o.oneSegment, knobSegments, "segments"},
		{len(o.Projection) > 0, knobProject, "a projection"},
		{o.SkipExpired, knobSkipExpired, "SkipExpired"},
	} {
		if k.set && allowed&k.knob == 0 {
			return o, fmt.Errorf("repo: %s does not take %s", op, k.name)
		}
	}
	if o.Limit < 0 || o.PageSize < 0 || o.Segments < 0 {
		return o, fmt.Errorf("repo: %s: negative limit, page size or segment count", op)
	}
	return o, nil
}

type readKnobs uint8

const (
	knobFilter readKnobs = 1 << iota
	knobIndex
	knobOrder
	knobLimit
	knobSegments
	knobProject
	knobSkipExpired
)

// and combines conditions into one; ok is false when there are none.
func and(conds []expression.ConditionBuilder) (expression.ConditionBuilder, bool) {
	switch len(conds) {
	case 0:
		return expression.ConditionBuilder{}, false
	case 1:
		return conds[0], true
	}
	return expression.And(conds[0], conds[1], conds[2:]...), true
}

// onFailure asks for the current item when a condition fails if the caller
// wants it, or to tell a version conflict from another failed condition.
func onFailure(o WriteOptions, vc *versionCheck) types.ReturnValuesOnConditionCheckFailure {
	if o.ReturnCurrentOnFailure || vc != nil && !vc.alone {
		return types.ReturnValuesOnConditionCheckFailureAllOld
	}
	return ""
}

// apply sets a request's condition fields; a nil condition sets nothing.
func (c *writeCondition) apply(expr **string, names *map[string]string, values *map[string]types.AttributeValue) {
	if c != nil {
		*expr, *names, *values = c.expr, c.names, c.values
	}
}
