package repo

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
)

var cellType = reflect.TypeFor[field.Cell]()

// attrField is one DynamoDB attribute of a struct type, found with the rules
// of attributevalue: the `dynamodbav` name or else the Go name, "-" skipped,
// untagged embedded structs flattened, shallower and tagged names winning.
type attrField struct {
	index  []int
	goName string
	name   string
	tagged bool
	typ    reflect.Type
	sf     reflect.StructField
}

func attrFields(t reflect.Type) []attrField {
	type queued struct {
		t     reflect.Type
		index []int
	}
	var out []attrField
	visited := map[reflect.Type]bool{}
	next := []queued{{t: t}}
	for len(next) > 0 {
		current := next
		next = nil
		var level []attrField
		for _, q := range current {
			if visited[q.t] {
				continue
			}
			visited[q.t] = true
			for i := range q.t.NumField() {
				sf := q.t.Field(i)
				if !sf.IsExported() && !sf.Anonymous {
					continue
				}
				name, _, _ := strings.Cut(sf.Tag.Get("dynamodbav"), ",")
				if name == "-" {
					continue
				}
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				index := append(append([]int{}, q.index...), i)
				if sf.Anonymous && name == "" && ft.Kind() == reflect.Struct {
					next = append(next, queued{t: ft, index: index})
					continue
				}
				if !sf.IsExported() {
					continue
				}
				f := attrField{index: index, goName: sf.Name, name: name, tagged: name != "", typ: sf.Type, sf: sf}
				if f.name == "" {
					f.name = sf.Name
				}
				level = append(level, f)
			}
		}
		out = append(out, level...)
	}
	// Keep, for each name, the shallowest field; among equals the tagged one;
	// drop names that stay ambiguous.
	sort.SliceStable(out, func(i, j int) bool { return out[i].name < out[j].name })
	var visible []attrField
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && out[j].name == out[i].name {
			j++
		}
		if f, ok := dominant(out[i:j]); ok {
			visible = append(visible, f)
		}
		i = j
	}
	sort.Slice(visible, func(i, j int) bool { return lessIndex(visible[i].index, visible[j].index) })
	return visible
}

func dominant(fs []attrField) (attrField, bool) {
	if len(fs) == 1 {
		return fs[0], true
	}
	depth := len(fs[0].index)
	for _, f := range fs {
		depth = min(depth, len(f.index))
	}
	var best []attrField
	for _, f := range fs {
		if len(f.index) == depth {
			best = append(best, f)
		}
	}
	if len(best) == 1 {
		return best[0], true
	}
	var tagged []attrField
	for _, f := range best {
		if f.tagged {
			tagged = append(tagged, f)
		}
	}
	if len(tagged) == 1 {
		return tagged[0], true
	}
	return attrField{}, false
}

func lessIndex(a, b []int) bool {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

// isCell reports whether t is field.Encrypted[X] (or another Cell value type).
func isCell(t reflect.Type) bool {
	if t.Kind() != reflect.Struct || !reflect.PointerTo(t).Implements(cellType) {
		return false
	}
	// A struct that embeds an Encrypted implements Cell through promotion
	// but is not a cell; New rejects it by name.
	for i := range t.NumField() {
		if t.Field(i).Anonymous {
			return false
		}
	}
	return true
}

// cellPlan says where the encrypted values of one struct type are.
type cellPlan struct {
	fields []cellField
}

// cellField is a field that holds encrypted values, directly or in pointers,
// slices, arrays, maps or nested structs.
type cellField struct {
	index []int
	name  string
	// spec applies to the cells reached without passing through another struct.
	spec     enc.Spec
	specName string
	hasSpec  bool
}

// planner builds cell plans for a type and every struct type it reaches,
// resolving `enc` tags against a registry.
type planner struct {
	registry *enc.Registry
	mode     *enc.Mode
	plans    map[reflect.Type]*cellPlan
}

// containsCells reports whether values of t can hold encrypted fields.
func containsCells(t reflect.Type, seen map[reflect.Type]bool) bool {
	if isCell(t) {
		return true
	}
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return containsCells(t.Elem(), seen)
	case reflect.Map:
		return containsCells(t.Elem(), seen)
	case reflect.Struct:
		for _, f := range attrFields(t) {
			if containsCells(f.typ, seen) {
				return true
			}
		}
	}
	return false
}

// directCells reports whether t reaches cells without passing through a
// struct that is not itself a cell, i.e. whether an `enc` tag on a field of
// type t is needed.
func directCells(t reflect.Type) bool {
	for {
		if isCell(t) {
			return true
		}
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			t = t.Elem()
		default:
			return false
		}
	}
}

// cellUnder returns the cell type under t, for a t that directCells accepts.
func cellUnder(t reflect.Type) reflect.Type {
	for !isCell(t) {
		t = t.Elem()
	}
	return t
}

func (p *planner) plan(t reflect.Type, owner string) (*cellPlan, error) {
	if cp, ok := p.plans[t]; ok {
		return cp, nil
	}
	cp := &cellPlan{}
	p.plans[t] = cp // before recursing, so recursive types terminate
	for i := range t.NumField() {
		// Embedding promotes the Encrypted's marshal and print methods to
		// the whole struct, which then marshals as one encrypted value.
		sf := t.Field(i)
		embedded := sf.Type
		if embedded.Kind() == reflect.Pointer {
			embedded = embedded.Elem()
		}
		if sf.Anonymous && isCell(embedded) {
			return nil, fmt.Errorf("repo: field %s.%s: an embedded field.Encrypted makes %s marshal as that one value; give the field a name", owner, sf.Name, owner)
		}
	}
	for _, f := range attrFields(t) {
		if !containsCells(f.typ, map[reflect.Type]bool{}) {
			continue
		}
		where := owner + "." + f.goName
		cf := cellField{index: f.index, name: f.name}
		specName, hasTag := f.sf.Tag.Lookup("enc")
		switch {
		case directCells(f.typ):
			if !hasTag || specName == "" {
				return nil, fmt.Errorf("repo: field %s (attribute %q): encrypted field has no `enc:\"spec\"` tag: %w", where, f.name, enc.ErrNoSpec)
			}
			spec, ok := p.registry.Lookup(specName)
			if !ok {
				return nil, fmt.Errorf("repo: field %s (attribute %q): spec %q: %w", where, f.name, specName, enc.ErrNoSpec)
			}
			if err := field.CheckType(cellUnder(f.typ)); err != nil {
				return nil, fmt.Errorf("repo: field %s (attribute %q): %w", where, f.name, err)
			}
			if p.mode != nil {
				spec.Mode = *p.mode
			}
			cf.spec, cf.specName, cf.hasSpec = spec, specName, true
		case hasTag:
			return nil, fmt.Errorf("repo: field %s has an `enc` tag but is not a field.Encrypted", where)
		}
		if inner := structUnder(f.typ); inner != nil && !isCell(inner) {
			if _, err := p.plan(inner, inner.Name()); err != nil {
				return nil, err
			}
		}
		cp.fields = append(cp.fields, cf)
	}
	return cp, nil
}

// structUnder returns the struct type reached through pointers and
// containers, or nil.
func structUnder(t reflect.Type) reflect.Type {
	for {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			t = t.Elem()
		case reflect.Struct:
			return t
		default:
			return nil
		}
	}
}

// keyField is the hash or range key of a repository's item type.
type keyField struct {
	index []int
	name  string
	typ   reflect.Type
	// reader marshals a key value exactly as the field is in an item
	// (",string", ",unixtime", ...).
	reader *attrReader
}

func newKeyField(f attrField) *keyField {
	return &keyField{index: f.index, name: f.name, typ: f.typ, reader: newAttrReader(f)}
}

// marshal turns a key value into the attribute value the field would have.
// The value must be of the field's type, or a number or string type that
// converts to it without loss.
func (kf *keyField) marshal(v any) (types.AttributeValue, error) {
	val := reflect.ValueOf(v)
	if !val.IsValid() {
		return nil, fmt.Errorf("no value")
	}
	if !val.Type().AssignableTo(kf.typ) {
		converted, ok := convertExactly(val, kf.typ)
		if !ok {
			return nil, fmt.Errorf("%T does not fit the key's type %s", v, kf.typ)
		}
		val = converted
	}
	av, err := kf.reader.marshal(val)
	if err != nil {
		return nil, err
	}
	if av == nil {
		return nil, fmt.Errorf("empty value")
	}
	return av, nil
}

// attributeType is the DynamoDB type the key is stored as: the field's own
// type, unless its options say otherwise (",string" stores a number as S).
func (kf *keyField) attributeType() (types.ScalarAttributeType, error) {
	av, err := kf.reader.marshal(reflect.Zero(kf.typ))
	if err == nil {
		switch av.(type) {
		case *types.AttributeValueMemberS:
			return types.ScalarAttributeTypeS, nil
		case *types.AttributeValueMemberN:
			return types.ScalarAttributeTypeN, nil
		case *types.AttributeValueMemberB:
			return types.ScalarAttributeTypeB, nil
		}
	}
	return scalarType(kf.typ)
}

// convertExactly converts between number types, or between string types,
// when the value survives the round trip; never between kinds (Go would turn
// an int into a one-rune string).
func convertExactly(v reflect.Value, to reflect.Type) (reflect.Value, bool) {
	kindOf := func(k reflect.Kind) int {
		switch {
		case k >= reflect.Int && k <= reflect.Float64:
			return 1
		case k == reflect.String:
			return 2
		}
		return 0
	}
	from := kindOf(v.Kind())
	if from == 0 || from != kindOf(to.Kind()) || !v.CanConvert(to) {
		return reflect.Value{}, false
	}
	c := v.Convert(to)
	if !c.CanConvert(v.Type()) || !c.Convert(v.Type()).Equal(v) {
		return reflect.Value{}, false
	}
	return c, true
}

func keyFields(t reflect.Type) (hash, rng *keyField, err error) {
	for _, f := range attrFields(t) {
		role := f.sf.Tag.Get("repo")
		for _, r := range strings.Split(role, ",") {
			var slot **keyField
			switch r {
			case "hash":
				slot = &hash
			case "range":
				slot = &rng
			case "", "version", "ttl":
				continue
			default:
				return nil, nil, fmt.Errorf("repo: field %s.%s: unknown role %q in `repo` tag", t.Name(), f.goName, r)
			}
			if *slot != nil {
				return nil, nil, fmt.Errorf("repo: %s has more than one `repo:%q` field", t.Name(), r)
			}
			if isCell(f.typ) {
				return nil, nil, fmt.Errorf("repo: field %s.%s: a key cannot be encrypted", t.Name(), f.goName)
			}
			*slot = newKeyField(f)
		}
	}
	if hash == nil {
		return nil, nil, fmt.Errorf("repo: %s has no `repo:\"hash\"` field", t.Name())
	}
	return hash, rng, nil
}

// itemPlan says what sealing and opening need from an item besides its
// encrypted values: its primary key, for the bindings of version-2 values,
// and the attributes that specs take encryption context from.
type itemPlan struct {
	keys    []*attrReader          // hash, then range
	context map[string]*attrReader // by attribute name
	// sealedWith maps each context attribute to the top-level attributes
	// holding values sealed with context from it (see contextReaders).
	sealedWith map[string][]string
}

// attrReader reads one top-level attribute of an item as attributevalue
// writes it, tag options (",string", "unixtime", "omitempty") included, so
// that a value gives the same attribute on write and after a read.
type attrReader struct {
	name  string
	index []int
	// wrapper is a one-field struct type with the field's type and tag;
	// marshalling it is marshalling the field as part of its item.
	wrapper reflect.Type
}

func newAttrReader(f attrField) *attrReader {
	// The Go name matters when the tag names no attribute.
	wrapper := reflect.StructOf([]reflect.StructField{{Name: f.goName, Type: f.typ, Tag: f.sf.Tag}})
	return &attrReader{name: f.name, index: f.index, wrapper: wrapper}
}

// marshal returns v, a value of the field's type, as the attribute it is in
// an item; nil when the item would leave it out or hold NULL.
func (r *attrReader) marshal(v reflect.Value) (types.AttributeValue, error) {
	w := reflect.New(r.wrapper).Elem()
	w.Field(0).Set(v)
	m, err := marshalMap(w.Interface())
	if err != nil {
		return nil, err
	}
	if av := m[r.name]; !isNull(av) {
		return av, nil
	}
	return nil, nil
}

// newItemPlan checks that every attribute a spec takes context from is a
// plain top-level attribute of t and prepares readers for it and the keys.
func newItemPlan(t reflect.Type, hash, rng *keyField, plans map[reflect.Type]*cellPlan) (*itemPlan, error) {
	byName := map[string]attrField{}
	for _, f := range attrFields(t) {
		byName[f.name] = f
	}
	ip := &itemPlan{context: map[string]*attrReader{}}
	for _, k := range []*keyField{hash, rng} {
		if k != nil {
			ip.keys = append(ip.keys, k.reader)
		}
	}
	types := make([]reflect.Type, 0, len(plans))
	for pt := range plans {
		types = append(types, pt)
	}
	sort.Slice(types, func(i, j int) bool { return types[i].String() < types[j].String() })
	for _, pt := range types {
		for _, cf := range plans[pt].fields {
			if !cf.hasSpec {
				continue
			}
			ctxKeys := make([]string, 0, len(cf.spec.ContextFrom))
			for k := range cf.spec.ContextFrom {
				ctxKeys = append(ctxKeys, k)
			}
			sort.Strings(ctxKeys)
			for _, ck := range ctxKeys {
				attr := cf.spec.ContextFrom[ck]
				where := fmt.Sprintf("repo: attribute %q: spec %q takes context key %q from attribute %q", cf.name, cf.specName, ck, attr)
				f, ok := byName[attr]
				switch {
				case !ok:
					return nil, fmt.Errorf("%s, which %s does not have: %w", where, t, enc.ErrItemContext)
				case containsCells(f.typ, map[reflect.Type]bool{}):
					return nil, fmt.Errorf("%s, which is encrypted: %w", where, enc.ErrItemContext)
				}
				if ip.context[attr] == nil {
					ip.context[attr] = newAttrReader(f)
				}
			}
		}
	}
	ip.sealedWith = contextReaders(t, plans)
	return ip, nil
}
