package repo

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"

	"github.com/dynoseal/dynoseal/enc"
)

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

// withProjection adds to b the projection of a read that asks for attrs, or
// nothing when attrs is empty. It is the one place projections are built.
//
// The projection grows by what opening the encrypted attributes among attrs
// takes: the item's key attributes for specs whose values are bound to their
// item (version 2), and the attributes that specs take context from. Left
// out, those values could not be opened. keys adds more attributes the
// caller needs (e.g. the table's key, to continue a page from an item).
func (r *Repo[T]) withProjection(b expression.Builder, attrs []string, keys []string) expression.Builder {
	if len(attrs) == 0 {
		return b
	}
	var names []string
	add := func(more ...string) {
		for _, n := range more {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	add(attrs...)
	for _, a := range attrs {
		add(r.openNeeds[topLevelName(a)]...)
	}
	add(keys...)
	p := expression.NamesList(expression.Name(names[0]))
	for _, n := range names[1:] {
		p = p.AddNames(expression.Name(n))
	}
	return b.WithProjection(p)
}

// projectionOnly builds the projection of a read that has no other
// expression (Get, BatchGet), or nothing when attrs is empty.
func (r *Repo[T]) projectionOnly(op string, attrs []string, keys []string) (expr *string, names map[string]string, err error) {
	if len(attrs) == 0 {
		return nil, nil, nil
	}
	e, err := r.withProjection(expression.NewBuilder(), attrs, keys).Build()
	if err != nil {
		return nil, nil, fmt.Errorf("repo %s: %s: projection: %w", r.table, op, err)
	}
	return e.Projection(), e.Names(), nil
}

// topLevelName is the attribute a projected document path starts at:
// "profile" of "profile.ssn" and of "cards[0]".
func topLevelName(path string) string {
	if i := strings.IndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return path
}

// openingNeeds maps each top-level attribute of t that holds encrypted
// values, directly or in nested documents, to the other attributes opening
// them takes (see withProjection); attributes that need none are absent.
func openingNeeds(t reflect.Type, plans map[reflect.Type]*cellPlan, hash, rng *keyField) map[string][]string {
	var keyNames []string
	for _, k := range []*keyField{hash, rng} {
		if k != nil {
			keyNames = append(keyNames, k.name)
		}
	}
	out := map[string][]string{}
	for _, f := range plans[t].fields {
		var needs []string
		add := func(names ...string) {
			for _, n := range names {
				if !slices.Contains(needs, n) {
					needs = append(needs, n)
				}
			}
		}
		specsUnder(plans, t, f, map[reflect.Type]bool{}, func(s enc.Spec) {
			if s.Version == enc.Version2 {
				add(keyNames...)
			}
			add(slices.Sorted(maps.Values(s.ContextFrom))...)
		})
		if len(needs) > 0 {
			out[f.name] = needs
		}
	}
	return out
}

// specsUnder calls fn with the spec of every encrypted value that field f
// of struct type t can hold.
func specsUnder(plans map[reflect.Type]*cellPlan, t reflect.Type, f cellField, seen map[reflect.Type]bool, fn func(enc.Spec)) {
	if f.hasSpec {
		fn(f.spec)
	}
	inner := structUnder(t.FieldByIndex(f.index).Type)
	if inner == nil || isCell(inner) || seen[inner] || plans[inner] == nil {
		return
	}
	seen[inner] = true
	for _, g := range plans[inner].fields {
		specsUnder(plans, inner, g, seen, fn)
	}
}
