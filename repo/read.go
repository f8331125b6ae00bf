package repo

import (
	"fmt"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
)

// ReadOptions hold the knobs of the read operations. Each operation uses the
// ones that apply to it and rejects the others with an error, so a knob is
// never silently ignored.
type ReadOptions struct {
	// ConsistentRead asks for a strongly consistent read (Get, Query, Scan, BatchGet).
	ConsistentRead bool
	// Projection lists the attributes to return (Get, Query, Scan, BatchGet).
	// Encrypted attributes left out stay absent in the result.
	Projection []string
	// Filter drops items after they are read (Query, Scan). It may not
	// compare encrypted attributes.
	Filter *expression.ConditionBuilder
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
}

// ReadOption changes [ReadOptions].
type ReadOption func(*ReadOptions)

// ConsistentRead asks for a strongly consistent read.
func ConsistentRead() ReadOption { return func(o *ReadOptions) { o.ConsistentRead = true } }

// Project returns only the named attributes.
func Project(attrs ...string) ReadOption {
	return func(o *ReadOptions) { o.Projection = append(o.Projection, attrs...) }
}

// Filter drops the items that do not match cond.
func Filter(cond expression.ConditionBuilder) ReadOption {
	return func(o *ReadOptions) { o.Filter = &cond }
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

// readOptions applies opts and rejects the knobs op does not take.
func readOptions(op string, allowed readKnobs, opts []ReadOption) (ReadOptions, error) {
	var o ReadOptions
	for _, opt := range opts {
		opt(&o)
	}
	bad := func(knob string) error { return fmt.Errorf("repo: %s does not take %s", op, knob) }
	switch {
	case o.Filter != nil && allowed&knobFilter == 0:
		return o, bad("a filter")
	case o.Index != "" && allowed&knobIndex == 0:
		return o, bad("an index")
	case o.Descending && allowed&knobOrder == 0:
		return o, bad("an order")
	case o.Limit != 0 && allowed&knobLimit == 0:
		return o, bad("a limit")
	case o.PageSize != 0 && allowed&knobLimit == 0:
		return o, bad("a page size")
	case (o.Segments != 0 || o.oneSegment) && allowed&knobSegments == 0:
		return o, bad("segments")
	case o.Limit < 0 || o.PageSize < 0 || o.Segments < 0:
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
)

// projection builds the projection expression parts, or nothing.
func projection(attrs []string) (expr *string, names map[string]string, err error) {
	if len(attrs) == 0 {
		return nil, nil, nil
	}
	p := expression.NamesList(expression.Name(attrs[0]))
	for _, a := range attrs[1:] {
		p = p.AddNames(expression.Name(a))
	}
	e, err := expression.NewBuilder().WithProjection(p).Build()
	if err != nil {
		return nil, nil, fmt.Errorf("repo: projection: %w", err)
	}
	return e.Projection(), e.Names(), nil
}
