package repo

import (
	"maps"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
)

// rawValue is one encrypted value of an item as DynamoDB holds it, found by
// following the plan through the item's attribute values rather than
// through a T: for the checks and rewrites that must see the stored form
// (a NULL, a plaintext) before anything is decoded.
type rawValue struct {
	cell *node // the cell's node: its spec and field type
	// steps is the document path, for update expressions: each a name, or
	// a list position when index >= 0.
	steps []rawStep
	path  string // as found.path: "cards[2].number", for messages
	bound string // as found.bound, for version-2 bindings
	av    types.AttributeValue
}

type rawStep struct {
	name  string
	index int // -1 for a name
}

// rawValues calls visit for every encrypted value m holds where T puts
// one, NULLs included, in a fixed order. Values whose container has another
// shape than T's (a list where T has a struct) are not visited: decoding
// the item reports them.
func (p *plan) rawValues(m attrMap, visit func(rawValue)) {
	if p.root != nil {
		rawStruct(m, p.root, rawValue{}, visit)
	}
}

func rawStruct(m attrMap, s *structNode, at rawValue, visit func(rawValue)) {
	for _, f := range s.fields {
		av, ok := m[f.name]
		if !ok {
			continue
		}
		next := at.then(rawStep{name: f.name, index: -1})
		if len(at.steps) == 0 {
			next.path, next.bound = f.name, boundSegment(f.name, true)
		} else {
			next.path, next.bound = at.path+"."+f.name, at.bound+boundSegment(f.name, false)
		}
		rawWalk(av, f.node, next, visit)
	}
}

func rawWalk(av types.AttributeValue, n *node, at rawValue, visit func(rawValue)) {
	switch n.kind {
	case cellKind:
		at.cell, at.av = n, av
		visit(at)
	case pointerKind:
		rawWalk(av, n.elem, at, visit)
	case structKind:
		if m, ok := av.(*types.AttributeValueMemberM); ok {
			rawStruct(m.Value, n.strc, at, visit)
		}
	default:
		rawContainer(av, n, at, visit)
	}
}

// rawContainer walks the elements of a map, slice or array.
func rawContainer(av types.AttributeValue, n *node, at rawValue, visit func(rawValue)) {
	switch v := av.(type) {
	case *types.AttributeValueMemberM:
		if n.kind == mapKind {
			rawMap(v.Value, n, at, visit)
		}
	case *types.AttributeValueMemberL:
		if n.kind != mapKind {
			rawList(v.Value, n, at, visit)
		}
	}
}

func rawMap(m attrMap, n *node, at rawValue, visit func(rawValue)) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		next := at.then(rawStep{name: k, index: -1})
		next.path, next.bound = at.path+"."+k, at.bound+"["+strconv.Quote(k)+"]"
		rawWalk(m[k], n.elem, next, visit)
	}
}

func rawList(l []types.AttributeValue, n *node, at rawValue, visit func(rawValue)) {
	bound := at.bound + "[]"
	for i, av := range l {
		next := at.then(rawStep{index: i})
		next.path, next.bound = at.path+"["+strconv.Itoa(i)+"]", bound
		rawWalk(av, n.elem, next, visit)
	}
}

// then is at one step further down; steps are copied, so that siblings
// never share them.
func (at rawValue) then(s rawStep) rawValue {
	at.steps = append(slices.Clip(at.steps), s)
	return at
}

// sealedForm says whether av is a value in sealed form.
func sealedForm(av types.AttributeValue) bool {
	s, ok := av.(*types.AttributeValueMemberS)
	return ok && enc.IsEncrypted(s.Value)
}
