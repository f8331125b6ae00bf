package repo

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/dynoseal/dynoseal/enc"
	// field registers its Encrypted types with cell, which the plan asks.
	_ "github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/internal/avfields"
	"github.com/dynoseal/dynoseal/internal/cell"
)

// plan is what a repository knows of its item type, worked out once in New:
// the attributes of every struct type an item reaches, the key, and where
// the encrypted values are. Operations only look things up in it.
type plan struct {
	typ       reflect.Type
	top       map[string]*attr // T's attributes by name
	hash, rng *attr
	root      *structNode // T's encrypted values; nil when it has none
	// cellsPerItem is how many encrypted values an item holds outside
	// lists and maps, to size the work of a read.
	cellsPerItem int
	// structs holds the attributes of every struct type reachable from T,
	// by name, for checking document paths.
	structs map[reflect.Type]map[string]*attr
	// holds says which reachable types can hold encrypted values; cells
	// which are encrypted values.
	holds, cells map[reflect.Type]bool
	// needs maps a top-level attribute holding encrypted values to the other
	// attributes opening them takes: the key for version-2 specs, and the
	// attributes of ContextFrom.
	needs map[string][]string
	// version is the field of `repo:"version"` (optimistic locking), ttl
	// the field of `repo:"ttl"`; nil when T has none.
	version, ttl *attr
	// requireSealed says some spec of T has RequireSealed, so reads check
	// the stored form of its values.
	requireSealed bool
	// specs holds each spec T uses, by name (with the repository's mode).
	specs map[string]enc.Spec
	// sealedWith maps an attribute that specs take encryption context from
	// to the top-level attributes holding values sealed with it.
	sealedWith map[string][]string
	// indexes are the secondary indexes T declares, by name.
	indexes []*index
	// beacons are the beacons T declares, in attribute order; beaconOf
	// holds them by the name of their encrypted attribute.
	beacons  []*beacon
	beaconOf map[string]*beacon
}

// nodeKind is the shape of one step down to encrypted values.
type nodeKind uint8

const (
	cellKind nodeKind = iota
	pointerKind
	sliceKind
	arrayKind
	mapKind
	structKind
)

// node is a compiled step from a value to the encrypted values it holds.
type node struct {
	kind     nodeKind
	elem     *node        // pointer, slice, array, map
	strc     *structNode  // struct
	spec     enc.Spec     // cell
	specName string       // cell
	typ      reflect.Type // cell: the field.Encrypted type
}

// structNode is a struct type's fields that hold encrypted values.
type structNode struct {
	fields []*attr // each with a node
}

// attr is one attribute of a struct type (see avfields.Field), with what
// the plan adds to it.
type attr struct {
	name   string
	goName string // Owner.Field, for messages
	index  []int
	typ    reflect.Type
	tag    reflect.StructTag
	// node is where encrypted values sit in the attribute; nil when it
	// holds none.
	node *node
	// wrapper is a one-field struct with the field's type and tag:
	// marshalling it marshals a value exactly as this attribute, options
	// (",string", ",unixtime", "omitempty") included.
	wrapper reflect.Type
	// plain says a key value of this attribute can be written directly:
	// a string, integer or []byte type without options or its own
	// marshaler (see marshalPlain).
	plain bool
}

// planner compiles a plan; it keeps the struct nodes made so far, so that
// recursive types end.
type planner struct {
	registry *enc.Registry
	mode     *enc.Mode
	p        *plan
	nodes    map[reflect.Type]*structNode
}

func compile(t reflect.Type, registry *enc.Registry, mode *enc.Mode, projections []IndexProjection) (*plan, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("repo: item type %s is not a struct", t)
	}
	c := &planner{registry: registry, mode: mode, nodes: map[reflect.Type]*structNode{},
		p: &plan{typ: t, structs: map[reflect.Type]map[string]*attr{}, holds: map[reflect.Type]bool{}, cells: map[reflect.Type]bool{}, specs: map[string]enc.Spec{}}}
	root, err := c.structOf(t)
	if err != nil {
		return nil, err
	}
	c.p.root = root
	c.p.cellsPerItem = countCells(root, map[*structNode]bool{})
	c.p.top = c.p.structs[t]
	if err := c.beacons(); err != nil {
		return nil, err
	}
	if err := c.keys(t); err != nil {
		return nil, err
	}
	if err := c.context(); err != nil {
		return nil, err
	}
	if err := c.indexes(projections); err != nil {
		return nil, err
	}
	return c.p, nil
}

// structOf compiles struct type t: its attributes, and a node for the ones
// holding encrypted values (nil when none does).
func (c *planner) structOf(t reflect.Type) (*structNode, error) {
	if n, ok := c.nodes[t]; ok {
		return n, nil
	}
	n := &structNode{}
	c.nodes[t] = n // before recursing, so recursive types end
	if err := checkEmbeddedCell(t); err != nil {
		return nil, err
	}
	fields, hidden := avfields.Of(t)
	if err := checkHidden(hidden); err != nil {
		return nil, err
	}
	if err := c.checkNestedRoles(t, fields); err != nil {
		return nil, err
	}
	byName := make(map[string]*attr, len(fields))
	for _, af := range fields {
		f := &attr{name: af.Name, goName: af.GoName, index: af.Index, typ: af.Type, tag: af.Tag,
			wrapper: reflect.StructOf([]reflect.StructField{{Name: "V", Type: af.Type, Tag: af.Tag}})}
		byName[f.name] = f
		var err error
		if f.node, err = c.field(f); err != nil {
			return nil, err
		}
		if f.node != nil {
			n.fields = append(n.fields, f)
		}
	}
	c.p.structs[t] = byName
	if len(n.fields) == 0 {
		c.nodes[t] = nil
		return nil, nil
	}
	return n, nil
}

// field compiles the node of one attribute, checking its `enc` tag.
func (c *planner) field(f *attr) (*node, error) {
	specName, tagged := f.tag.Lookup("enc")
	n, direct, err := c.nodeOf(f.typ)
	switch {
	case err != nil:
		return nil, err
	case direct && !tagged:
		return nil, fmt.Errorf("repo: field %s (attribute %q): encrypted field has no `enc:\"spec\"` tag: %w", f.goName, f.name, enc.ErrNoSpec)
	case tagged && !direct:
		return nil, fmt.Errorf("repo: field %s has an `enc:%q` tag but is not a field.Encrypted (or a pointer, slice, array or map of them): its value would be stored in plaintext", f.goName, specName)
	case !direct:
		return n, nil
	}
	spec, err := c.spec(f, specName)
	if err != nil {
		return nil, err
	}
	c.setSpec(n, specName, spec)
	return n, nil
}

// setSpec gives the cell that n leads to (through pointers, slices, arrays
// and maps) its spec, and records the spec in the plan.
func (c *planner) setSpec(n *node, name string, spec enc.Spec) {
	for n.kind != cellKind {
		n = n.elem
	}
	n.spec, n.specName = spec, name
	c.p.requireSealed = c.p.requireSealed || spec.RequireSealed
	c.p.specs[name] = spec
}

func (c *planner) spec(f *attr, name string) (enc.Spec, error) {
	if name == "" {
		return enc.Spec{}, fmt.Errorf("repo: field %s (attribute %q): empty `enc` tag: %w", f.goName, f.name, enc.ErrNoSpec)
	}
	spec, ok := c.registry.Lookup(name)
	if !ok {
		return enc.Spec{}, fmt.Errorf("repo: field %s (attribute %q): spec %q: %w", f.goName, f.name, name, enc.ErrNoSpec)
	}
	leaf := f.typ
	for !cell.Is(leaf) {
		leaf = leaf.Elem()
	}
	if err := cell.Check(leaf); err != nil {
		return enc.Spec{}, fmt.Errorf("repo: field %s (attribute %q): %w", f.goName, f.name, err)
	}
	if c.mode != nil {
		spec.Mode = *c.mode
	}
	return spec, nil
}

// nodeOf compiles the node of type t, or nil when t holds no encrypted
// values. direct says the values are reached without passing through another
// struct, so that the field's own `enc` tag names their spec.
func (c *planner) nodeOf(t reflect.Type) (n *node, direct bool, err error) {
	defer func() { c.p.holds[t] = n != nil }()
	if cell.Is(t) {
		c.p.cells[t] = true
		return &node{kind: cellKind, typ: t}, true, nil
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		elem, direct, err := c.nodeOf(t.Elem())
		if elem == nil || err != nil {
			return nil, false, err
		}
		return &node{kind: containerKinds[t.Kind()], elem: elem}, direct, nil
	case reflect.Struct:
		s, err := c.structOf(t)
		if s == nil || err != nil {
			return nil, false, err
		}
		return &node{kind: structKind, strc: s}, false, nil
	}
	return nil, false, nil
}

var containerKinds = map[reflect.Kind]nodeKind{reflect.Pointer: pointerKind, reflect.Slice: sliceKind, reflect.Array: arrayKind, reflect.Map: mapKind}

// checkEmbeddedCell refuses an embedded Encrypted: embedding promotes its
// marshal and print methods, so the whole struct would marshal as that one
// value.
func checkEmbeddedCell(t reflect.Type) error {
	for i := range t.NumField() {
		sf := t.Field(i)
		ft := sf.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if sf.Anonymous && cell.Is(ft) {
			return fmt.Errorf("repo: field %s.%s: an embedded field.Encrypted makes %s marshal as that one value; give the field a name", t.Name(), sf.Name, t.Name())
		}
	}
	return nil
}

// checkHidden refuses a `repo` or `enc` tag on a field attributevalue does
// not see: the tag would be accepted and do nothing.
func checkHidden(hidden []avfields.Hidden) error {
	for _, h := range hidden {
		if h.Unusable {
			return fmt.Errorf("repo: field %s: %s", h.GoName, h.Why)
		}
		for _, key := range []string{"repo", "enc", "beacon"} {
			if v, ok := h.Tag.Lookup(key); ok {
				return fmt.Errorf("repo: field %s has a `%s:%q` tag, but attributevalue never reads or writes the field: %s", h.GoName, key, v, h.Why)
			}
		}
	}
	return nil
}

// checkNestedRoles refuses a `repo` role on a member of a nested document:
// roles name attributes of the table's items, so there it would do nothing.
// A struct type embedded in T (at any depth) gives T its own attributes, so
// its roles count.
func (c *planner) checkNestedRoles(t reflect.Type, fields []*avfields.Field) error {
	if t == c.p.typ || embeddedIn(c.p.typ, t, map[reflect.Type]bool{}) {
		return nil
	}
	for _, f := range fields {
		if role, ok := f.Tag.Lookup("repo"); ok {
			return fmt.Errorf("repo: field %s has a `repo:%q` tag, but %s is a nested document, not the item: roles are for the item's own attributes", f.GoName, role, t)
		}
		if b, ok := f.Tag.Lookup("beacon"); ok {
			return fmt.Errorf("repo: field %s has a `beacon:%q` tag, but %s is a nested document, not the item: beacons are stored beside the item's own attributes", f.GoName, b, t)
		}
	}
	return nil
}

// embeddedIn reports whether struct type inner is embedded in outer,
// directly or through other embedded structs.
func embeddedIn(outer, inner reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[outer] {
		return false
	}
	seen[outer] = true
	for i := range outer.NumField() {
		sf := outer.Field(i)
		ft := sf.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if sf.Anonymous && ft.Kind() == reflect.Struct && (ft == inner || embeddedIn(ft, inner, seen)) {
			return true
		}
	}
	return false
}

// keys finds the hash and range fields of t and refuses roles not built.
func (c *planner) keys(t reflect.Type) error {
	for _, f := range c.p.top {
		for role := range strings.SplitSeq(f.tag.Get("repo"), ",") {
			var slot **attr
			switch role {
			case "":
				continue
			case "hash":
				slot = &c.p.hash
			case "range":
				slot = &c.p.rng
			case "version":
				slot = &c.p.version
			case "ttl":
				slot = &c.p.ttl
			default:
				if err := c.indexRole(f, role); err != nil {
					return err
				}
				continue
			}
			if *slot != nil {
				return fmt.Errorf("repo: %s has more than one `repo:%q` field: %s and %s", t, role, (*slot).goName, f.goName)
			}
			if err := c.role(f, role); err != nil {
				return err
			}
			*slot = f
		}
	}
	if c.p.hash == nil {
		return fmt.Errorf("repo: %s has no `repo:\"hash\"` field", t)
	}
	return nil
}

// context checks that every attribute a spec takes context from is a plain
// top-level attribute, and works out what opening and updating need.
func (c *planner) context() error {
	p := c.p
	p.needs, p.sealedWith = map[string][]string{}, map[string][]string{}
	for _, top := range slices.Sorted(maps.Keys(p.top)) {
		if err := p.contextOf(top, cellsUnder(p.top[top].node, map[*structNode]bool{})); err != nil {
			return err
		}
	}
	return nil
}

func (p *plan) contextOf(top string, cells []*node) error {
	for _, u := range cells {
		if u.spec.Version == enc.Version2 {
			p.needs[top] = appendNew(p.needs[top], p.keyNames()...)
		}
		for _, ck := range slices.Sorted(maps.Keys(u.spec.ContextFrom)) {
			name := u.spec.ContextFrom[ck]
			where := fmt.Sprintf("repo: attribute %q: spec %q takes context key %q from attribute %q", top, u.specName, ck, name)
			f, ok := p.top[name]
			switch {
			case !ok:
				return fmt.Errorf("%s, which %s does not have: %w", where, p.typ, enc.ErrItemContext)
			case f.node != nil:
				return fmt.Errorf("%s, which is encrypted: %w", where, enc.ErrItemContext)
			}
			p.needs[top] = appendNew(p.needs[top], name)
			p.sealedWith[name] = appendNew(p.sealedWith[name], top)
		}
	}
	return nil
}

// countCells counts the encrypted values a struct holds directly or in
// nested structs and pointers.
func countCells(s *structNode, seen map[*structNode]bool) int {
	if s == nil || seen[s] {
		return 0
	}
	seen[s] = true
	n := 0
	for _, f := range s.fields {
		switch leaf := f.node; {
		case leaf.kind == cellKind:
			n++
		case leaf.kind == structKind:
			n += countCells(leaf.strc, seen)
		}
	}
	return n
}

// cellsUnder lists the cell nodes reachable from n.
func cellsUnder(n *node, seen map[*structNode]bool) []*node {
	switch {
	case n == nil:
		return nil
	case n.kind == cellKind:
		return []*node{n}
	case n.kind != structKind:
		return cellsUnder(n.elem, seen)
	case seen[n.strc]:
		return nil
	}
	seen[n.strc] = true
	var out []*node
	for _, f := range n.strc.fields {
		out = append(out, cellsUnder(f.node, seen)...)
	}
	return out
}

func appendNew(list []string, names ...string) []string {
	for _, n := range names {
		if !slices.Contains(list, n) {
			list = append(list, n)
		}
	}
	return list
}

// isCell reports whether t is an encrypted value's type.
func (p *plan) isCell(t reflect.Type) bool { return p.cells[t] }

// keyNames are the attributes of the table's primary key.
func (p *plan) keyNames() []string {
	if p.rng == nil {
		return []string{p.hash.name}
	}
	return []string{p.hash.name, p.rng.name}
}

// fieldAt returns the attribute of struct type t (behind pointers) named name.
func (p *plan) fieldAt(t reflect.Type, name string) (*attr, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	f, ok := p.structs[t][name]
	return f, ok
}
