package repo

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/internal/attrkind"
	"github.com/dynoseal/dynoseal/internal/cell"
)

// This file is where values are sealed before a write and opened after a
// read: the walker finds an item's encrypted values with the plan, sealing
// collects them for one enc.Seal call and fills them in after marshalling,
// opening collects them for one enc.OpenEach call.

// found is one encrypted value in an item.
type found struct {
	cell cell.Cell
	spec *enc.Spec // the plan's; never changed
	path string    // for messages: "cards[2].number"
	// bound is the path version-2 values are bound to: list positions left
	// out ("cards[].number"), so reordering a list keeps values readable,
	// and map keys quoted (`tags["home"]`).
	bound string
}

// walker visits the encrypted values of one item.
type walker struct {
	// copyOnWrite clones every pointer, slice and map on the way to a value
	// before it is changed, so that changing a copy of an item never changes
	// the caller's item through shared memory.
	copyOnWrite bool
	cloned      map[uintptr]bool // pointers cloned once already
	visit       func(found) error
	// later collects, for values inside map elements, the store of the
	// element back into its map, for a caller that changes values after the
	// walk (opening): map elements are copies.
	later *[]func()
}

func (w *walker) walkStruct(v reflect.Value, s *structNode, path, bound string) error {
	for _, f := range s.fields {
		fv, ok := w.field(v, f.index)
		if !ok {
			continue
		}
		p, b := f.name, boundSegment(f.name, true)
		if path != "" {
			p, b = path+"."+f.name, bound+boundSegment(f.name, false)
		}
		if err := w.walk(fv, f.node, p, b); err != nil {
			return err
		}
	}
	return nil
}

// field follows embedded pointers; a nil one means the field is absent.
func (w *walker) field(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			w.clone(v)
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}

func (w *walker) clone(v reflect.Value) {
	if !w.copyOnWrite || w.cloned[v.Pointer()] {
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

func (w *walker) walk(v reflect.Value, n *node, path, bound string) error {
	switch n.kind {
	case cellKind:
		return w.visit(found{cell: cell.Of(v.Addr().Interface()), spec: &n.spec, path: path, bound: bound})
	case structKind:
		return w.walkStruct(v, n.strc, path, bound)
	case pointerKind:
		if v.IsNil() {
			return nil
		}
		w.clone(v)
		return w.walk(v.Elem(), n.elem, path, bound)
	case mapKind:
		return w.walkMap(v, n, path, bound)
	case sliceKind:
		if v.IsNil() {
			return nil
		}
		if w.copyOnWrite {
			c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
			reflect.Copy(c, v)
			v.Set(c)
		}
	}
	bound += "[]" // once for all elements
	paths, ends := elementPaths(path, v.Len())
	for i := range v.Len() {
		if err := w.walk(v.Index(i), n.elem, paths[ends[i]:ends[i+1]], bound); err != nil {
			return err
		}
	}
	return nil
}

// elementPaths writes the paths of n list elements ("cards[0]",
// "cards[1]", ...) into one string, element i between ends[i] and
// ends[i+1]: one allocation per list instead of one per element.
func elementPaths(path string, n int) (string, []int) {
	var b []byte
	ends := make([]int, 1, n+1)
	for i := range n {
		b = append(strconv.AppendInt(append(append(b, path...), '['), int64(i), 10), ']')
		ends = append(ends, len(b))
	}
	return string(b), ends
}

// walkMap visits map elements, which are not addressable: each is copied,
// visited and stored back, into a new map when copying on write. The
// cells' changes happen during the visit, so storing back after it is
// enough.
func (w *walker) walkMap(v reflect.Value, n *node, path, bound string) error {
	if v.IsNil() {
		return nil
	}
	target := v
	if w.copyOnWrite {
		target = reflect.MakeMapWithSize(v.Type(), v.Len())
	}
	iter := v.MapRange()
	for iter.Next() {
		key := iter.Key()
		elem := reflect.New(v.Type().Elem()).Elem()
		elem.Set(iter.Value())
		name := fmt.Sprint(key.Interface())
		if err := w.walk(elem, n.elem, path+"."+name, bound+"["+strconv.Quote(name)+"]"); err != nil {
			return err
		}
		target.SetMapIndex(key, elem)
		if w.later != nil {
			*w.later = append(*w.later, func() { target.SetMapIndex(key, elem) })
		}
	}
	if w.copyOnWrite {
		v.Set(target)
	}
	return nil
}

// boundSegment writes an attribute name into a bound path, quoting names
// that could be mistaken for path syntax so that no two paths collide.
func boundSegment(name string, top bool) string {
	switch {
	case name == "" || strings.ContainsAny(name, `.[]"`):
		return "[" + strconv.Quote(name) + "]"
	case top:
		return name
	}
	return "." + name
}

// facts reads what sealing and opening need from an item as DynamoDB has
// it (written, read, or the key and Set values of an update): its primary
// key, for version-2 bindings, and the attributes specs take context from.
type facts struct {
	p    *plan
	item attrMap
	// absent explains an attribute the item lacks; nil for the default.
	absent func(name, purpose string) error
	key    []enc.KeyAttribute
	keyErr error
	done   bool
}

func (f *facts) attribute(name, purpose string) (types.AttributeValue, error) {
	av, ok := f.item[name]
	if ok && !isNull(av) {
		return av, nil
	}
	if f.absent != nil {
		return nil, f.absent(name, purpose)
	}
	return nil, fmt.Errorf("attribute %s, needed %s, is not in the item (a projection must include it)", name, purpose)
}

func isNull(av types.AttributeValue) bool {
	_, null := av.(*types.AttributeValueMemberNULL)
	return av == nil || null
}

// primaryKey returns the item's key as enc binds values to it.
func (f *facts) primaryKey() ([]enc.KeyAttribute, error) {
	if f.done {
		return f.key, f.keyErr
	}
	f.done = true
	for _, name := range f.p.keyNames() {
		av, err := f.attribute(name, "to bind version-2 values to their item")
		if err != nil {
			f.key, f.keyErr = nil, fmt.Errorf("%w: key %w", enc.ErrBinding, err)
			return nil, f.keyErr
		}
		switch v := av.(type) {
		case *types.AttributeValueMemberS:
			f.key = append(f.key, enc.StringKey(name, v.Value))
		case *types.AttributeValueMemberN:
			f.key = append(f.key, enc.NumberKey(name, v.Value))
		case *types.AttributeValueMemberB:
			f.key = append(f.key, enc.BinaryKey(name, v.Value))
		default:
			f.key, f.keyErr = nil, fmt.Errorf("%w: key attribute %s is %s, want S, N or B", enc.ErrBinding, name, attrkind.Of(av))
			return nil, f.keyErr
		}
	}
	return f.key, nil
}

// itemContext returns the values of spec.ContextFrom, by context key.
func (f *facts) itemContext(spec enc.Spec) (map[string]string, error) {
	if len(spec.ContextFrom) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(spec.ContextFrom))
	for ck, name := range spec.ContextFrom {
		av, err := f.attribute(name, fmt.Sprintf("for encryption context key %q", ck))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", enc.ErrItemContext, err)
		}
		if out[ck], err = contextValue(av); err != nil {
			return nil, fmt.Errorf("%w: attribute %s, for context key %q: %w", enc.ErrItemContext, name, ck, err)
		}
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
		return "", fmt.Errorf("it is %s, want a scalar (S, N, B or BOOL)", attrkind.Of(av))
	}
	if v == "" {
		return "", errors.New("it is empty")
	}
	return v, nil
}

// boundTo is what the stored value at fd is tied to where facts place it;
// "" when its context cannot be read (then nothing can be checked).
func (f *facts) boundTo(stored string, fd found) string {
	itemCtx, err := f.itemContext(*fd.spec)
	if err != nil {
		return ""
	}
	key, _ := f.primaryKey()
	return enc.BoundTo(stored, enc.Binding{Attribute: fd.bound, Key: key}, itemCtx)
}

// sealing collects the values of the items of one write, to seal them with
// one enc.Seal call after the items are marshalled.
type sealing struct {
	p     *plan
	slots []slot                        // in item order
	first []int                         // the first slot of each item added
	avs   []types.AttributeValueMemberS // reserved in blocks, not one by one
	reqs  []enc.SealRequest             // scratch of seal
	at    []*slot                       // scratch of seal
	// beacons are the beacons of the write's values (see addBeacon);
	// beaconReqs and beaconAt are scratch of seal, like reqs and at.
	beacons    []beaconSlot
	beaconReqs []enc.BeaconRequest
	beaconAt   []int
	// beaconFirst is, by item, its first beacon slot: items add theirs in
	// order, so each item's slots are one run.
	beaconFirst []int
}

// sealings keeps the scratch slices of finished writes for the next ones:
// a large write's slices are a good part of what it allocates.
var sealings = sync.Pool{New: func() any { return new(sealing) }}

func newSealing(p *plan) *sealing {
	s := sealings.Get().(*sealing)
	s.p = p
	return s
}

// release wipes what the write collected and keeps the slices for reuse.
// The attribute values handed out stay with their items.
func (s *sealing) release() {
	s.wipe()
	clear(s.slots)
	clear(s.reqs)
	clear(s.at)
	clear(s.beacons)
	clear(s.beaconReqs)
	*s = sealing{slots: s.slots[:0], first: s.first[:0], reqs: s.reqs[:0], at: s.at[:0],
		beacons: s.beacons[:0], beaconReqs: s.beaconReqs[:0], beaconAt: s.beaconAt[:0], beaconFirst: s.beaconFirst[:0]}
	sealings.Put(s)
}

// reserve returns a fresh attribute value for a reserved slot.
func (s *sealing) reserve() *types.AttributeValueMemberS {
	if len(s.avs) == 0 {
		s.avs = make([]types.AttributeValueMemberS, 64)
	}
	av := &s.avs[0]
	s.avs = s.avs[1:]
	return av
}

// slot is one value of a write: reserved before marshalling, sealed (or
// given back its stored form) after.
type slot struct {
	item  int
	found found
	av    *types.AttributeValueMemberS
	plain []byte // to seal
	// loaded marks a value that was loaded, not set: it may go back as
	// stored, and plain is only had when it must be sealed again.
	loaded bool
	// stored and origin belong to a loaded value tied to its item: it goes
	// back as stored only to the place it came from.
	stored, origin string
}

// add reserves the values of item number i, held in v, an addressable copy.
func (s *sealing) add(i int, v reflect.Value, root *structNode) error {
	if i == len(s.first) { // an update adds one item's values in several calls
		s.first = append(s.first, len(s.slots))
	}
	if root == nil {
		return nil
	}
	w := walker{copyOnWrite: true, visit: func(fd found) error {
		plain, ok, err := fd.cell.Pending()
		if err != nil {
			return fmt.Errorf("attribute %s: %w", fd.path, err)
		}
		sl := slot{item: i, found: fd, plain: plain, loaded: !ok}
		if !ok {
			// A loaded value goes back as stored, unless it is tied to
			// its item or context, which may have changed.
			if sl.origin = fd.cell.Origin(); sl.origin == "" {
				return nil
			}
			sl.stored = fd.cell.Sealed()
		}
		sl.av = s.reserve()
		fd.cell.Reserve(sl.av)
		s.slots = append(s.slots, sl)
		return nil
	}}
	return w.walkStruct(v, root, "", "")
}

// minSealedSize is the least a sealed value of n plaintext bytes can take:
// the envelope with a one-byte encrypted data key, in base64.
func minSealedSize(n int) int {
	return len(enc.Prefix) + base64.StdEncoding.EncodedLen(3+1+12+n+16)
}

// pendingSize is the least the reserved values of item i add to its size.
func (s *sealing) pendingSize(i int) int {
	n := 0
	for _, sl := range s.itemSlots(i) {
		n += minSealedSize(max(len(sl.plain), len(sl.stored)))
	}
	for _, sl := range s.itemBeacons(i) {
		n += sl.b.spec.Width()
	}
	return n
}

// pendingSizes is pendingSize by top-level attribute.
func (s *sealing) pendingSizes(i int) map[string]int {
	var out map[string]int
	for _, sl := range s.itemSlots(i) {
		if out == nil {
			out = map[string]int{}
		}
		top, _ := topName(sl.found.path)
		out[top] += minSealedSize(max(len(sl.plain), len(sl.stored)))
	}
	return out
}

// itemSlots are the slots of item number i.
func (s *sealing) itemSlots(i int) []slot {
	if i >= len(s.first) { // nothing of item i was added
		return nil
	}
	end := len(s.slots)
	if i+1 < len(s.first) {
		end = s.first[i+1]
	}
	return s.slots[s.first[i]:end]
}

// seal seals the reserved values, reading each item's facts from its
// marshalled attributes, and fills them in. It makes no KMS call when a
// request is invalid.
func (s *sealing) seal(ctx context.Context, e *enc.Encryptor, items []attrMap, absent func(string, string) error) error {
	defer s.wipe()
	reqs, err := s.requests(items, absent)
	if err != nil {
		return err
	}
	breqs, err := s.beaconRequests(items, absent)
	if err != nil {
		return err
	}
	if len(reqs) > 0 {
		stored, err := e.Seal(ctx, reqs)
		if err != nil {
			return s.failure(err)
		}
		s.fill(stored)
	}
	if len(breqs) == 0 {
		return nil
	}
	digests, err := e.Beacons(ctx, breqs)
	if err != nil {
		return s.beaconFailure(err)
	}
	s.fillBeacons(digests)
	return nil
}

// sealFailure is a failure to seal with the item it happened in, for
// messages that name the item.
type sealFailure struct {
	item    int               // the item's position in the write
	context map[string]string // the item's encryption context from ContextFrom, if any
	err     error
}

func (f *sealFailure) Error() string { return f.err.Error() }
func (f *sealFailure) Unwrap() error { return f.err }

// failure ties an error of enc.Seal over s's requests to the item of the
// request that failed.
func (s *sealing) failure(err error) error {
	var ee *enc.Error
	if !errors.As(err, &ee) || ee.Index < 0 || ee.Index >= len(s.at) {
		return err
	}
	return &sealFailure{item: s.at[ee.Index].item, context: s.reqs[ee.Index].ItemContext, err: err}
}

// requests returns the seal requests of the reserved values that must be
// sealed, reading each item's facts from its marshalled attributes; the
// others are filled in with their stored form already. fill takes the
// sealed values in the same order.
func (s *sealing) requests(items []attrMap, absent func(string, string) error) ([]enc.SealRequest, error) {
	all := make([]facts, len(items))
	for i := range all {
		all[i] = facts{p: s.p, item: items[i], absent: absent}
	}
	reqs, at := s.reqs[:0], s.at[:0]
	for i := range s.slots {
		sl := &s.slots[i]
		f := &all[sl.item]
		req, ok, err := sl.request(f)
		if err != nil {
			return nil, &sealFailure{item: sl.item, err: err}
		}
		if ok {
			reqs, at = append(reqs, req), append(at, sl)
		}
	}
	s.reqs, s.at = reqs, at
	return reqs, nil
}

// fill puts the sealed values of the requests into their items.
func (s *sealing) fill(stored []string) {
	for i, sl := range s.at {
		sl.av.Value = stored[i]
	}
}

// request returns the seal request of a slot; ok is false when its stored
// form goes back unchanged (then filled in already).
func (sl *slot) request(f *facts) (req enc.SealRequest, ok bool, err error) {
	fd := sl.found
	req = enc.SealRequest{Spec: *fd.spec, Attribute: fd.path}
	if sl.loaded && sl.plain == nil {
		if f.boundTo(sl.stored, fd) == sl.origin {
			sl.av.Value = sl.stored
			return req, false, nil
		}
		plain, known, err := fd.cell.Known()
		switch {
		case err != nil:
			return req, false, req.Fail(err)
		case !known:
			return req, false, req.Fail(fmt.Errorf("%w: the value was loaded from another item or encryption context and is sealed to it; set it again to move it", enc.ErrBinding))
		}
		sl.plain = plain
	}
	req.Plaintext = sl.plain
	// A mode that cannot seal is refused by Seal before any KMS call; the
	// item need not be read for it.
	if !fd.spec.Mode.CanEncrypt() {
		return req, true, nil
	}
	if req.ItemContext, err = f.itemContext(*fd.spec); err != nil {
		return req, false, req.Fail(err)
	}
	if fd.spec.Version == enc.Version2 {
		key, err := f.primaryKey()
		if err != nil {
			return req, false, req.Fail(err)
		}
		req.Binding = enc.Binding{Attribute: fd.bound, Key: key}
	}
	return req, true, nil
}

// sealedSize is what the values sealed for item i add to its size.
func (s *sealing) sealedSize(i int) int {
	n := 0
	for _, sl := range s.itemSlots(i) {
		n += len(sl.av.Value)
	}
	for _, sl := range s.itemBeacons(i) {
		n += len(sl.av.Value)
	}
	return n
}

// wipe clears the plaintexts collected.
func (s *sealing) wipe() {
	for _, sl := range s.slots {
		clear(sl.plain)
	}
	for _, sl := range s.beacons {
		clear(sl.plain)
	}
}

// opening collects the sealed values of the items of one read, to open them
// with one enc.OpenEach call.
type opening struct {
	p     *plan
	reqs  []enc.OpenRequest
	cells []cell.Cell
	items []int
	// facts holds, per request, why the item's key or context could not be
	// read: the better reason when enc fails for want of them.
	facts  []error
	failed []error  // per item: the first value that could not be loaded or opened
	later  []func() // see walker.later
	// carried holds, per request, the beacon digest loaded with a value
	// that has one (ok false otherwise), for values that stay sealed; empty
	// when T has no beacons.
	carried []carriedBeacon
	// lenient leaves a value that cannot be opened sealed, with Value
	// giving the reason, instead of failing its item: for items a write
	// returns, where an error would say the write did not happen.
	lenient bool
}

// add collects the sealed values of item number i, held in v and read as raw.
func (o *opening) add(i int, v reflect.Value, raw attrMap, root *structNode) {
	if root == nil {
		return
	}
	f := facts{p: o.p, item: raw}
	w := walker{later: &o.later, visit: func(fd found) error {
		req := enc.OpenRequest{Spec: *fd.spec, Attribute: fd.path}
		if err := fd.cell.LoadError(); err != nil {
			o.fail(i, req.Fail(err))
			return nil
		}
		stored, ok := fd.cell.Stored()
		if !ok {
			o.checkPlaintext(i, fd)
			return nil
		}
		// enc decides whether the value needs its key and context, after
		// its mode: what cannot be read is left out, and its reason kept.
		itemCtx, ctxErr := f.itemContext(*fd.spec)
		key, keyErr := f.primaryKey()
		req.Stored, req.ItemContext, req.Binding = stored, itemCtx, enc.Binding{Attribute: fd.bound, Key: key}
		if ctxErr == nil {
			if origin := enc.BoundTo(stored, req.Binding, itemCtx); origin != "" {
				fd.cell.SetOrigin(origin)
			}
		}
		o.reqs, o.cells, o.items = append(o.reqs, req), append(o.cells, fd.cell), append(o.items, i)
		o.facts = append(o.facts, cmp.Or(ctxErr, keyErr))
		if len(o.p.beacons) > 0 {
			o.carried = append(o.carried, o.p.carriedBeacon(fd.bound, raw))
		}
		return nil
	}}
	_ = w.walkStruct(v, root, "", "") // visit never fails
}

// checkPlaintext fails a value loaded from plaintext when its spec
// requires sealed values. For items returned by writes (lenient), which
// never fail, the value stays unusable: its Value gives the reason.
func (o *opening) checkPlaintext(i int, fd found) {
	if !fd.spec.RequireSealed {
		return
	}
	if _, legacy, _ := fd.cell.Pending(); legacy {
		err := enc.OpenRequest{Spec: *fd.spec, Attribute: fd.path}.Fail(fmt.Errorf("%w: found a value that is not sealed", enc.ErrUnsealed))
		fd.cell.OpenFailed(err)
		o.fail(i, err)
	}
}

// openings keeps the scratch slices of finished reads for the next ones.
var openings = sync.Pool{New: func() any { return new(opening) }}

// newOpening returns an opening for items read items.
func newOpening(p *plan, items int, lenient bool) *opening {
	o := openings.Get().(*opening)
	o.p, o.lenient = p, lenient
	o.failed = slices.Grow(o.failed[:0], items)[:items]
	n := items * p.cellsPerItem
	o.reqs, o.cells, o.items, o.facts = slices.Grow(o.reqs, n), slices.Grow(o.cells, n), slices.Grow(o.items, n), slices.Grow(o.facts, n)
	return o
}

// release drops what the read collected and keeps the slices for reuse.
func (o *opening) release() {
	clear(o.reqs)
	clear(o.cells)
	clear(o.failed)
	clear(o.facts)
	clear(o.later)
	clear(o.carried)
	*o = opening{reqs: o.reqs[:0], cells: o.cells[:0], items: o.items[:0], failed: o.failed[:0], facts: o.facts[:0], later: o.later[:0], carried: o.carried[:0]}
	openings.Put(o)
}

func (o *opening) fail(i int, err error) {
	if o.failed[i] == nil && !o.lenient {
		o.failed[i] = err
	}
}

// open opens what was collected. A value the mode keeps sealed (WriteOnly)
// is no failure: its Value says why.
func (o *opening) open(ctx context.Context, by valueOpener) {
	defer func() {
		for _, store := range o.later {
			store()
		}
	}()
	if len(o.reqs) == 0 {
		return
	}
	plain, errs := by.OpenEach(ctx, o.reqs)
	for n, c := range o.cells {
		err := errs[n]
		switch {
		case err == nil:
			if err = c.Opened(plain[n]); err != nil {
				err = o.reqs[n].Fail(err)
			}
			clear(plain[n])
		case o.facts[n] != nil && (errors.Is(err, enc.ErrItemContext) || errors.Is(err, enc.ErrBinding)):
			err = o.reqs[n].Fail(o.facts[n])
		}
		if err != nil {
			c.OpenFailed(err)
			if len(o.p.beacons) > 0 && o.carried[n].ok {
				c.SetBeacon(o.carried[n].digest)
			}
			if !errors.Is(err, enc.ErrWriteOnly) {
				o.fail(o.items[n], err)
			}
		}
	}
}

// valueOpener opens sealed values: an *enc.Encryptor for one call, an
// *enc.Session for the calls of one iteration.
type valueOpener interface {
	OpenEach(ctx context.Context, reqs []enc.OpenRequest) ([][]byte, []error)
}

// pendingSeal is a write's reserved values with what sealing them needs, so
// that the values of several writes (a transaction) can be sealed together.
type pendingSeal struct {
	s      *sealing
	items  []attrMap
	absent func(string, string) error
	failed func(error) error // the write's error for a failure of sealing
}

// run seals the values of this write alone.
func (p pendingSeal) run(ctx context.Context, e *enc.Encryptor) error {
	if err := p.s.seal(ctx, e, p.items, p.absent); err != nil {
		return p.failed(err)
	}
	return nil
}
