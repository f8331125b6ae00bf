package repo

import (
	"context"
	"fmt"
	"reflect"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
)

// foundCell is one encrypted value in an item.
type foundCell struct {
	cell field.Cell
	attr string // path of the attribute, e.g. "cards[2].number"
	spec enc.Spec
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

func (w *cellWalker) walkStruct(v reflect.Value, path string) error {
	cp := w.plans[v.Type()]
	if cp == nil {
		return nil
	}
	for _, f := range cp.fields {
		fv, ok := w.fieldByIndex(v, f.index)
		if !ok {
			continue
		}
		name := f.name
		if path != "" {
			name = path + "." + f.name
		}
		if err := w.walk(fv, name, f); err != nil {
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

func (w *cellWalker) walk(v reflect.Value, path string, f cellField) error {
	t := v.Type()
	if isCell(t) {
		return w.visit(foundCell{cell: v.Addr().Interface().(field.Cell), attr: path, spec: f.spec})
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
			if err := w.walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i), f); err != nil {
				return err
			}
		}
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		// Map elements are not addressable: change a copy and store it back.
		target := v
		if w.copyOnWrite {
			target = reflect.MakeMapWithSize(t, v.Len())
		}
		iter := v.MapRange()
		for iter.Next() {
			elem := reflect.New(t.Elem()).Elem()
			elem.Set(iter.Value())
			if err := w.walk(elem, fmt.Sprintf("%s.%v", path, iter.Key()), f); err != nil {
				return err
			}
			target.SetMapIndex(iter.Key(), elem)
			if w.writeBacks != nil {
				key := iter.Key()
				*w.writeBacks = append(*w.writeBacks, func() { target.SetMapIndex(key, elem) })
			}
		}
		if w.copyOnWrite {
			v.Set(target)
		}
	}
	return nil
}

// sealer seals the pending encrypted values of items before a write.
type sealer struct {
	encryptor *enc.Encryptor
	plans     map[reflect.Type]*cellPlan
	reqs      []enc.SealRequest
	cells     []field.Cell
	// writeBacks store sealed map elements into their maps.
	writeBacks []func()
}

// add collects the pending values of one item, held in an addressable v.
func (s *sealer) add(v reflect.Value) error {
	w := cellWalker{plans: s.plans, copyOnWrite: true, writeBacks: &s.writeBacks, visit: func(c foundCell) error {
		plain, ok, err := c.cell.PendingPlaintext()
		if err != nil {
			return &enc.Error{Op: enc.OpEncrypt, Attribute: c.attr, KeyID: c.spec.KeyID, Err: err}
		}
		if ok {
			s.reqs = append(s.reqs, enc.SealRequest{Spec: c.spec, Attribute: c.attr, Plaintext: plain})
			s.cells = append(s.cells, c.cell)
		}
		return nil
	}}
	return w.walkStruct(v, "")
}

// seal encrypts everything collected, sharing data keys across items.
func (s *sealer) seal(ctx context.Context) error {
	if len(s.reqs) == 0 {
		return nil
	}
	stored, err := s.encryptor.Seal(ctx, s.reqs)
	for _, r := range s.reqs {
		clear(r.Plaintext)
	}
	if err != nil {
		return err
	}
	for i, c := range s.cells {
		c.SetSealed(stored[i])
	}
	for _, wb := range s.writeBacks {
		wb()
	}
	return nil
}

// opener opens the sealed values of items after a read.
type opener struct {
	encryptor *enc.Encryptor
	plans     map[reflect.Type]*cellPlan
	reqs      []enc.OpenRequest
	cells     []field.Cell
	// writeBacks store opened map elements into their maps.
	writeBacks []func()
}

func (o *opener) add(v reflect.Value) error {
	w := cellWalker{plans: o.plans, writeBacks: &o.writeBacks, visit: func(c foundCell) error {
		stored, ok := c.cell.StoredCiphertext()
		if !ok {
			return nil
		}
		if !c.spec.Mode.CanDecrypt() {
			c.cell.SetOpenError(&enc.Error{Op: enc.OpDecrypt, Attribute: c.attr, KeyID: c.spec.KeyID, Err: enc.ErrWriteOnly})
			return nil
		}
		o.reqs = append(o.reqs, enc.OpenRequest{Spec: c.spec, Attribute: c.attr, Stored: stored})
		o.cells = append(o.cells, c.cell)
		return nil
	}}
	return w.walkStruct(v, "")
}

func (o *opener) open(ctx context.Context) error {
	if len(o.reqs) == 0 {
		return nil
	}
	plain, err := o.encryptor.Open(ctx, o.reqs)
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
	for _, wb := range o.writeBacks {
		wb()
	}
	return nil
}
