package repo

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
)

// foundCell is one encrypted value in an item.
type foundCell struct {
	cell field.Cell
	attr string // path of the attribute for messages, e.g. "cards[2].number"
	// bound is the path that version-2 values are bound to: list positions
	// are left out ("cards[].number"), so reordering a list keeps its values
	// readable, and map keys are quoted (`tags["home"]`).
	bound string
	spec  enc.Spec
}

// paths is the path to a value, for messages and for bindings.
type paths struct{ attr, bound string }

func (p paths) field(name string) paths {
	if p.attr == "" {
		return paths{attr: name, bound: boundSegment(name, true)}
	}
	return paths{attr: p.attr + "." + name, bound: p.bound + boundSegment(name, false)}
}

func (p paths) index(i int) paths {
	return paths{attr: fmt.Sprintf("%s[%d]", p.attr, i), bound: p.bound + "[]"}
}

func (p paths) key(k reflect.Value) paths {
	name := fmt.Sprint(k.Interface())
	return paths{attr: p.attr + "." + name, bound: p.bound + "[" + strconv.Quote(name) + "]"}
}

// boundSegment writes an attribute name into a bound path, quoting names
// that could be mistaken for path syntax so that no two paths collide.
func boundSegment(name string, top bool) string {
	if name == "" || strings.ContainsAny(name, `.[]"`) {
		return "[" + strconv.Quote(name) + "]"
	}
	if top {
		return name
	}
	return "." + name
}

// cellWalker visits the encrypted values of items.
type cellWalker struct {
	plans map[reflect.Type]*cellPlan
	// copyOnWrite clones every pointer, slice and map on the way to a cell
	// before it is changed, so sealing a copy of an item never changes the
	// caller's item through shared memory.
	copyOnWrite bool
	visit       func(foundCell) error
	// writeBacks collects, for cells inside map values, the store of the
	// changed element into its map. Map values are copies: the store must
	// run after the cell has been sealed or opened, not during the walk.
	writeBacks *[]func()
	// cloned holds the pointers copyOnWrite made, so that a pointer reached
	// twice (an embedded *struct with several encrypted fields) is cloned
	// once and the cells found through it stay the item's cells.
	cloned map[uintptr]bool
}

func (w *cellWalker) walkStruct(v reflect.Value, path paths) error {
	cp := w.plans[v.Type()]
	if cp == nil {
		return nil
	}
	for _, f := range cp.fields {
		fv, ok := w.fieldByIndex(v, f.index)
		if !ok {
			continue
		}
		if err := w.walk(fv, path.field(f.name), f); err != nil {
			return err
		}
	}
	return nil
}

// fieldByIndex follows embedded pointers; a nil one means the field is absent.
func (w *cellWalker) fieldByIndex(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			if w.copyOnWrite {
				w.clonePointer(v)
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}

func (w *cellWalker) clonePointer(v reflect.Value) {
	if w.cloned[v.Pointer()] {
		return
	}
	c := reflect.New(v.Type().Elem())
	c.Elem().Set(v.Elem())
	v.Set(c)
	if w.cloned == nil {
		w.cloned = map[uintptr]bool{}
	}
	w.cloned[c.Pointer()] = true
}

func (w *cellWalker) walk(v reflect.Value, path paths, f cellField) error {
	t := v.Type()
	if isCell(t) {
		return w.visit(foundCell{cell: v.Addr().Interface().(field.Cell), attr: path.attr, bound: path.bound, spec: f.spec})
	}
	switch t.Kind() {
	case reflect.Struct:
		return w.walkStruct(v, path)
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		if w.copyOnWrite {
			w.clonePointer(v)
		}
		return w.walk(v.Elem(), path, f)
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		if w.copyOnWrite {
			c := reflect.MakeSlice(t, v.Len(), v.Len())
			reflect.Copy(c, v)
			v.Set(c)
		}
		fallthrough
	case reflect.Array:
		for i := range v.Len() {
			if err := w.walk(v.Index(i), path.index(i), f); err != nil {
				return err
			}
		}
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		// Map elements are not addressable: work on a copy and store it
		// back, now and again once its cells are sealed or opened, which
		// happens after the walk (see writeBacks).
		target := v
		if w.copyOnWrite {
			target = reflect.MakeMapWithSize(t, v.Len())
		}
		iter := v.MapRange()
		for iter.Next() {
			key := iter.Key()
			elem := reflect.New(t.Elem()).Elem()
			elem.Set(iter.Value())
			if err := w.walk(elem, path.key(key), f); err != nil {
				return err
			}
			target.SetMapIndex(key, elem)
			if w.writeBacks != nil {
				*w.writeBacks = append(*w.writeBacks, func() { target.SetMapIndex(key, elem) })
			}
		}
		if w.copyOnWrite {
			v.Set(target)
		}
	}
	return nil
}

// itemFacts reads, once per item and only when a value needs them, the
// item's primary key (for version-2 bindings) and its context attributes.
// Both come from the Go item through attributevalue, on write and on read
// alike, so a number key or context value gives the same bytes both ways.
type itemFacts struct {
	plan *itemPlan
	item reflect.Value
	// raw is what DynamoDB returned, on the read side only: an attribute
	// absent from it (left out by a projection) must not be read as the Go
	// zero value, which would fail later as a mismatch.
	raw map[string]types.AttributeValue

	// given, on the update side only, names the attributes that hold
	// values: the key and what the update Sets. Any other attribute of the
	// synthetic item is a Go zero value, not the item's, and must not be
	// read as its encryption context.
	given map[string]bool

	key     []enc.KeyAttribute
	keyErr  error
	keyDone bool
	context map[string]string // attribute name -> context value
}

func (f *itemFacts) attr(r *attrReader, purpose string) (types.AttributeValue, error) {
	if r == nil {
		return nil, fmt.Errorf("no attribute known, needed %s", purpose)
	}
	if f.raw != nil {
		if av, ok := f.raw[r.name]; !ok || isNull(av) {
			return nil, fmt.Errorf("attribute %s, needed %s, is not in the item as read (a projection must include it)", r.name, purpose)
		}
	}
	v, ok := fieldByIndex(f.item, r.index)
	if !ok {
		return nil, fmt.Errorf("attribute %s, needed %s, has no value", r.name, purpose)
	}
	av, err := r.marshal(v)
	if err != nil {
		return nil, fmt.Errorf("attribute %s, needed %s: %w", r.name, purpose, err)
	}
	if av == nil {
		return nil, fmt.Errorf("attribute %s, needed %s, has no value", r.name, purpose)
	}
	return av, nil
}

func isNull(av types.AttributeValue) bool {
	_, null := av.(*types.AttributeValueMemberNULL)
	return av == nil || null
}

// binding returns the binding of the value at path bound.
func (f *itemFacts) binding(bound string) (enc.Binding, error) {
	if !f.keyDone {
		f.keyDone = true
		var keys []*attrReader
		if f.plan != nil {
			keys = f.plan.keys
		}
		if len(keys) == 0 {
			f.keyErr = fmt.Errorf("%w: the item's key is not known here", enc.ErrBinding)
		}
		for _, r := range keys {
			av, err := f.attr(r, "to bind version-2 values to their item")
			if err != nil {
				f.keyErr = fmt.Errorf("%w: key %w", enc.ErrBinding, err)
				break
			}
			switch v := av.(type) {
			case *types.AttributeValueMemberS:
				f.key = append(f.key, enc.StringKey(r.name, v.Value))
			case *types.AttributeValueMemberN:
				f.key = append(f.key, enc.NumberKey(r.name, v.Value))
			case *types.AttributeValueMemberB:
				f.key = append(f.key, enc.BinaryKey(r.name, v.Value))
			default:
				f.keyErr = fmt.Errorf("%w: key attribute %s is stored as %s, want a string, number or binary", enc.ErrBinding, r.name, avKind(av))
			}
			if f.keyErr != nil {
				break
			}
		}
	}
	if f.keyErr != nil {
		return enc.Binding{}, f.keyErr
	}
	return enc.Binding{Attribute: bound, Key: f.key}, nil
}

// itemContext returns the values of spec.ContextFrom, by context key.
func (f *itemFacts) itemContext(spec enc.Spec) (map[string]string, error) {
	if len(spec.ContextFrom) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(spec.ContextFrom))
	for ck, attr := range spec.ContextFrom {
		v, ok := f.context[attr]
		if !ok {
			if f.given != nil && !f.given[attr] {
				return nil, fmt.Errorf("%w: context key %q: attribute %s is not Set by this update; Set it in the same update, so that the value is sealed for the item's own context", enc.ErrItemContext, ck, attr)
			}
			var r *attrReader
			if f.plan != nil {
				r = f.plan.context[attr]
			}
			if r == nil { // New checked every spec; this is a spec it has not seen
				return nil, fmt.Errorf("%w: context key %q: item has no attribute %s", enc.ErrItemContext, ck, attr)
			}
			av, err := f.attr(r, fmt.Sprintf("for encryption context key %q", ck))
			if err != nil {
				return nil, fmt.Errorf("%w: %w", enc.ErrItemContext, err)
			}
			if v, err = contextValue(av); err != nil {
				return nil, fmt.Errorf("%w: attribute %s, for context key %q: %w", enc.ErrItemContext, attr, ck, err)
			}
			if f.context == nil {
				f.context = map[string]string{}
			}
			f.context[attr] = v
		}
		out[ck] = v
	}
	return out, nil
}

// contextValue turns a scalar attribute into an encryption context value.
func contextValue(av types.AttributeValue) (string, error) {
	var v string
	switch a := av.(type) {
	case *types.AttributeValueMemberS:
		v = a.Value
	case *types.AttributeValueMemberN:
		v = a.Value
	case *types.AttributeValueMemberB:
		v = base64.StdEncoding.EncodeToString(a.Value)
	case *types.AttributeValueMemberBOOL:
		v = strconv.FormatBool(a.Value)
	default:
		return "", fmt.Errorf("it is %s, want a scalar (string, number, binary or boolean)", avKind(av))
	}
	if v == "" {
		return "", fmt.Errorf("it is empty")
	}
	return v, nil
}

// fieldByIndex follows embedded pointers without changing anything; a nil
// one means the field is absent.
func fieldByIndex(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}

// origin says where a sealed value belongs: the item key and attribute it is
// bound to (version 2) and the context taken from its item. Unchanged values
// are written back as stored only to the place they came from; elsewhere they
// would no longer open. It is "" for values bound to nothing, and when the
// facts cannot be read (then nothing can be checked).
func (f *itemFacts) origin(spec enc.Spec, bound string, bindKey bool) string {
	if !bindKey && len(spec.ContextFrom) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("1\x00")
	if bindKey {
		binding, err := f.binding(bound)
		if err != nil {
			return ""
		}
		canon, err := binding.Canonical()
		if err != nil {
			return ""
		}
		b.Reset()
		b.WriteString("2\x00")
		b.WriteString(canon)
	}
	ctx, err := f.itemContext(spec)
	if err != nil {
		return ""
	}
	for _, k := range slices.Sorted(maps.Keys(ctx)) {
		b.WriteString("\x00")
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(ctx[k])
	}
	return b.String()
}

// sealer seals the pending encrypted values of items before a write.
type sealer struct {
	encryptor  *enc.Encryptor
	plans      map[reflect.Type]*cellPlan
	item       *itemPlan
	given      map[string]bool // see itemFacts.given
	reqs       []enc.SealRequest
	cells      []field.Cell
	origins    []string
	writeBacks []func()
}

// add collects the pending values of one item, held in an addressable v.
func (s *sealer) add(v reflect.Value) error {
	facts := itemFacts{plan: s.item, item: v, given: s.given}
	w := cellWalker{plans: s.plans, copyOnWrite: true, writeBacks: &s.writeBacks, visit: func(c foundCell) error {
		fail := func(err error) error {
			return &enc.Error{Op: enc.OpEncrypt, Attribute: c.attr, KeyID: c.spec.KeyID, Err: err}
		}
		plain, ok, err := c.cell.PendingPlaintext()
		if err != nil {
			return fail(err)
		}
		if !ok {
			// An unchanged value goes back as stored, unless it was loaded
			// from another item or context that it is bound to.
			was := c.cell.Origin()
			if was == "" || facts.origin(c.spec, c.bound, strings.HasPrefix(was, "2")) == was {
				return nil
			}
			if plain, ok, err = c.cell.KnownPlaintext(); err != nil {
				return fail(err)
			}
			if !ok {
				return fail(fmt.Errorf("%w: the value was loaded from another item or encryption context and is sealed to it; set it again to move it", enc.ErrBinding))
			}
		}
		req := enc.SealRequest{Spec: c.spec, Attribute: c.attr, Plaintext: plain}
		// A mode that cannot seal is refused by Seal, before any KMS call;
		// the item need not be read for it.
		if c.spec.Mode.CanEncrypt() {
			if req.ItemContext, err = facts.itemContext(c.spec); err != nil {
				clear(plain)
				return fail(err)
			}
			if c.spec.Version == enc.Version2 {
				if req.Binding, err = facts.binding(c.bound); err != nil {
					clear(plain)
					return fail(err)
				}
			}
		}
		s.reqs = append(s.reqs, req)
		s.cells = append(s.cells, c.cell)
		s.origins = append(s.origins, facts.origin(c.spec, c.bound, c.spec.Version == enc.Version2))
		return nil
	}}
	if err := w.walkStruct(v, paths{}); err != nil {
		s.discard()
		return err
	}
	return nil
}

// discard wipes the plaintexts collected so far, when the write is abandoned.
func (s *sealer) discard() {
	for _, r := range s.reqs {
		clear(r.Plaintext)
	}
	s.reqs, s.cells, s.origins, s.writeBacks = nil, nil, nil, nil
}

// seal encrypts everything collected, sharing data keys across items.
func (s *sealer) seal(ctx context.Context) error {
	if len(s.reqs) == 0 {
		return nil
	}
	stored, err := s.encryptor.Seal(ctx, s.reqs)
	cells, origins, writeBacks := s.cells, s.origins, s.writeBacks
	s.discard()
	if err != nil {
		return err
	}
	for i, c := range cells {
		c.SetSealed(stored[i])
		c.SetOrigin(origins[i])
	}
	for _, wb := range writeBacks {
		wb()
	}
	return nil
}

// opener opens the sealed values of items after a read.
type opener struct {
	by         valueOpener
	plans      map[reflect.Type]*cellPlan
	item       *itemPlan
	reqs       []enc.OpenRequest
	cells      []field.Cell
	writeBacks []func()
}

// add collects the sealed values of one item, held in an addressable v and
// unmarshalled from raw (nil when unknown).
func (o *opener) add(v reflect.Value, raw map[string]types.AttributeValue) error {
	facts := itemFacts{plan: o.item, item: v, raw: raw}
	w := cellWalker{plans: o.plans, writeBacks: &o.writeBacks, visit: func(c foundCell) error {
		stored, ok := c.cell.StoredCiphertext()
		if !ok {
			return nil
		}
		version, verr := enc.EnvelopeVersion(stored)
		// Freshly unmarshalled cells are bound to nothing; only a value
		// bound to its item needs its origin recorded (and a new state).
		if origin := facts.origin(c.spec, c.bound, verr == nil && version == enc.Version2); origin != "" {
			c.cell.SetOrigin(origin)
		}
		if !c.spec.Mode.CanDecrypt() {
			c.cell.SetOpenError(&enc.Error{Op: enc.OpDecrypt, Attribute: c.attr, KeyID: c.spec.KeyID, Err: enc.ErrWriteOnly})
			return nil
		}
		fail := func(err error) error {
			return &enc.Error{Op: enc.OpDecrypt, Attribute: c.attr, KeyID: c.spec.KeyID, Err: err}
		}
		req := enc.OpenRequest{Spec: c.spec, Attribute: c.attr, Stored: stored}
		var err error
		if req.ItemContext, err = facts.itemContext(c.spec); err != nil {
			return fail(err)
		}
		// The value's own version decides, so a spec moved to version 2
		// still opens version-1 values and one moved back still opens
		// version-2 values. A malformed value is left to Open to report.
		if verr == nil && version == enc.Version2 {
			if req.Binding, err = facts.binding(c.bound); err != nil {
				return fail(err)
			}
		}
		o.reqs = append(o.reqs, req)
		o.cells = append(o.cells, c.cell)
		return nil
	}}
	return w.walkStruct(v, paths{})
}

func (o *opener) open(ctx context.Context) error {
	// Cells in maps were given open errors (WriteOnly) during the walk.
	defer func() {
		for _, wb := range o.writeBacks {
			wb()
		}
	}()
	if len(o.reqs) == 0 {
		return nil
	}
	plain, err := o.by.Open(ctx, o.reqs)
	if err != nil {
		return err
	}
	for i, c := range o.cells {
		err := c.SetOpened(plain[i])
		clear(plain[i])
		if err != nil {
			r := o.reqs[i]
			return &enc.Error{Op: enc.OpDecrypt, Attribute: r.Attribute, KeyID: r.Spec.KeyID, Err: err}
		}
	}
	return nil
}
