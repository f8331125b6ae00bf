package repo

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/internal/cell"
)

// beacon is a beacon declared on an encrypted field with `beacon:"name"`:
// a truncated HMAC of the field's plaintext, stored in an attribute of its
// own so that an index can find items by the value (see Lookup).
type beacon struct {
	name  string // in the registry
	field *attr  // the encrypted field
	// attr is the attribute the beacon is stored in, "<field>_beacon": a
	// string, for index declarations and projections.
	attr *attr
	spec enc.Beacon
	// value is the field's spec: its ContextFrom (a tenant, say) keys the
	// beacon, so equal values of two tenants have unrelated beacons.
	value *enc.Spec
	// prefix are the attributes whose values come first in a compound
	// beacon ("acme#3fa1"), so that one index key narrows by tenant or
	// type before the value.
	prefix []*attr
	// bound is the field's path as the walker binds it, to know its value
	// when opening.
	bound string
	// index is the global secondary index keyed by the beacon; nil when
	// none is declared.
	index *index
}

// beaconSuffix makes the name of the attribute a beacon is stored in.
const beaconSuffix = "_beacon"

// beaconSeparator joins the parts of a compound beacon; the digest, which
// has no separator, comes last.
const beaconSeparator = "#"

var stringType = reflect.TypeFor[string]()

// beacons compiles the `beacon` tags of T's own attributes. Beacons live
// beside the value at the top level of the item, so a tag on a member of
// a nested document is refused (see checkNestedRoles).
func (c *planner) beacons() error {
	p := c.p
	p.beaconOf = map[string]*beacon{}
	for _, name := range slices.Sorted(maps.Keys(p.top)) {
		f := p.top[name]
		tag, ok := f.tag.Lookup("beacon")
		if !ok {
			continue
		}
		b, err := c.beacon(f, tag)
		if err != nil {
			return fmt.Errorf("repo: field %s (attribute %q): `beacon:%q`: %w", f.goName, f.name, tag, err)
		}
		p.beacons = append(p.beacons, b)
		p.beaconOf[f.name] = b
	}
	return nil
}

func (c *planner) beacon(f *attr, tag string) (*beacon, error) {
	name, options, _ := strings.Cut(tag, ",")
	if f.node == nil || f.node.kind != cellKind || f.typ != reflect.TypeFor[field.Encrypted[string]]() {
		return nil, fmt.Errorf("a beacon is made of a field.Encrypted[string] field (not a pointer, list or map of one); this field is %s", f.typ)
	}
	spec, ok := c.registry.LookupBeacon(name)
	if !ok {
		return nil, fmt.Errorf("beacon %q is not registered (enc.RegisterBeacon): %w", name, enc.ErrNoSpec)
	}
	b := &beacon{name: name, field: f, spec: spec, value: &f.node.spec, bound: boundSegment(f.name, true),
		attr: &attr{name: f.name + beaconSuffix, goName: f.goName + " (beacon)", typ: stringType, plain: true,
			wrapper: reflect.StructOf([]reflect.StructField{{Name: "V", Type: stringType}})}}
	if _, taken := c.p.top[b.attr.name]; taken {
		return nil, fmt.Errorf("the beacon is stored in attribute %q, which %s has already", b.attr.name, c.p.typ)
	}
	for opt := range strings.SplitSeq(options, ",") {
		if err := c.beaconOption(b, opt); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// beaconOption reads one option of a `beacon` tag: prefix=ATTR makes the
// beacon compound, led by ATTR's value.
func (c *planner) beaconOption(b *beacon, opt string) error {
	key, value, _ := strings.Cut(opt, "=")
	switch {
	case opt == "":
		return nil
	case key != "prefix":
		return fmt.Errorf("unknown option %q (beacon options are prefix=ATTRIBUTE)", opt)
	}
	f, ok := c.p.top[value]
	switch {
	case !ok:
		return fmt.Errorf("prefix attribute %q is not an attribute of %s", value, c.p.typ)
	case f.node != nil:
		return fmt.Errorf("prefix attribute %q is encrypted; a prefix is stored in the clear", value)
	case f == b.field || slices.Contains(b.prefix, f):
		return fmt.Errorf("prefix attribute %q is named twice or is the field itself", value)
	}
	if _, err := attributeType(f); err != nil {
		return fmt.Errorf("prefix attribute %q: %w", value, err)
	}
	b.prefix = append(b.prefix, f)
	return nil
}

// beaconIndexKey returns the attribute an index role on f keys the index
// by: f's beacon, which only a global index's hash key may be.
func (p *plan) beaconIndexKey(f *attr, name string, local, isRange bool) (*attr, error) {
	b := p.beaconOf[f.name]
	switch {
	case b == nil:
		return nil, fmt.Errorf("an index key cannot be encrypted; declare a beacon on the field (`beacon:\"name\"`) to index its beacon")
	case local || isRange:
		return nil, fmt.Errorf("a beacon can be the hash key of a global secondary index only, gsi:%s:hash", name)
	case b.index != nil:
		return nil, fmt.Errorf("the beacon already keys index %q", b.index.name)
	}
	b.index = p.indexNamed(name, false)
	return b.attr, nil
}

// checkBeaconIndex refuses a projection of a beacon's index that leaves
// out the encrypted value: a lookup opens each candidate to compare it.
func (p *plan) checkBeaconIndex(ix *index, attrs []string) error {
	for _, b := range p.beacons {
		if b.index == ix && !slices.Contains(attrs, b.field.name) {
			return fmt.Errorf("index %q is keyed by the beacon of %q, which Lookup opens to compare; project %q", ix.name, b.field.name, b.field.name)
		}
	}
	return nil
}

// beaconNeeds are the attributes besides a value that its beacon takes:
// those of its compound prefix.
func (p *plan) beaconNeeds(name string) []string {
	b := p.beaconOf[name]
	if b == nil {
		return nil
	}
	out := make([]string, len(b.prefix))
	for i, f := range b.prefix {
		out[i] = f.name
	}
	return out
}

// beaconSlot is the beacon of one value of a write: reserved before
// marshalling, filled once the write's values are sealed.
type beaconSlot struct {
	item  int
	b     *beacon
	plain []byte // the plaintext, when known
	// carried is the digest loaded with a value whose plaintext is not
	// known (WriteOnly): it goes back with the value as stored.
	carried string
	prefix  string // worked out from the item
	av      *types.AttributeValueMemberS
}

// addBeacon reserves the beacon of b for item number i, whose value is c.
// It returns nil when there is to be no beacon: no value, or a value
// loaded from an item that had none.
func (s *sealing) addBeacon(i int, b *beacon, c cell.Cell) (*types.AttributeValueMemberS, error) {
	for len(s.beaconFirst) <= i {
		s.beaconFirst = append(s.beaconFirst, len(s.beacons))
	}
	sl := beaconSlot{item: i, b: b}
	plain, ok, err := s.pendingPlain(i, b.bound), true, error(nil)
	if plain == nil {
		plain, ok, err = c.Known()
	}
	switch {
	case err != nil:
		return nil, fmt.Errorf("attribute %s: beacon: %w", b.field.name, err)
	case ok:
		sl.plain = plain
	case c.Sealed() == "":
		return nil, nil
	default:
		digest, recorded := c.Beacon()
		if !recorded {
			return nil, fmt.Errorf("attribute %s: its beacon cannot be made: the value is sealed and its plaintext is not known here; load the item through the repository, or Set the value again", b.field.name)
		}
		if digest == "" {
			return nil, nil
		}
		sl.carried = digest
	}
	sl.av = s.reserve()
	s.beacons = append(s.beacons, sl)
	return sl.av, nil
}

// pendingPlain returns the plaintext that item i's value at bound is to be
// sealed from in this write, so its beacon is made of the same bytes
// without encoding them again (Seal leaves plaintexts as they are); nil
// when the value is not sealed here.
func (s *sealing) pendingPlain(i int, bound string) []byte {
	for _, sl := range s.itemSlots(i) {
		if sl.found.bound == bound && sl.plain != nil {
			return sl.plain
		}
	}
	return nil
}

// itemBeacons are the beacon slots of item number i.
func (s *sealing) itemBeacons(i int) []beaconSlot {
	if i >= len(s.beaconFirst) {
		return nil
	}
	end := len(s.beacons)
	if i+1 < len(s.beaconFirst) {
		end = s.beaconFirst[i+1]
	}
	return s.beacons[s.beaconFirst[i]:end]
}

// beaconRequests returns the requests of the reserved beacons that must be
// computed, reading each item's context and prefix from its marshalled
// attributes; carried beacons are filled in already.
func (s *sealing) beaconRequests(items []attrMap, absent func(string, string) error) ([]enc.BeaconRequest, error) {
	reqs, at := s.beaconReqs[:0], s.beaconAt[:0]
	for i := range s.beacons {
		sl := &s.beacons[i]
		f := facts{p: s.p, item: items[sl.item], absent: absent}
		var err error
		if sl.prefix, err = sl.b.prefixOf(&f); err != nil {
			return nil, &sealFailure{item: sl.item, err: err}
		}
		if sl.plain == nil && sl.carried != "" {
			sl.av.Value = sl.prefix + sl.carried
			continue
		}
		req := enc.BeaconRequest{Beacon: sl.b.spec, Attribute: sl.b.attr.name, Plaintext: sl.plain}
		if req.ItemContext, err = f.itemContext(*sl.b.value); err != nil {
			return nil, &sealFailure{item: sl.item, err: fmt.Errorf("attribute %s: beacon: %w", sl.b.field.name, err)}
		}
		reqs, at = append(reqs, req), append(at, i)
	}
	s.beaconReqs, s.beaconAt = reqs, at
	return reqs, nil
}

// fillBeacons puts the computed digests of the requests into their items.
func (s *sealing) fillBeacons(digests []string) {
	for j, i := range s.beaconAt {
		sl := &s.beacons[i]
		sl.av.Value = sl.prefix + digests[j]
	}
}

// beaconFailure ties an error of enc.Beacons over s's requests to its item.
func (s *sealing) beaconFailure(err error) error {
	var ee *enc.Error
	if !errors.As(err, &ee) || ee.Index < 0 || ee.Index >= len(s.beaconAt) {
		return err
	}
	sl := s.beacons[s.beaconAt[ee.Index]]
	return &sealFailure{item: sl.item, context: s.beaconReqs[ee.Index].ItemContext, err: err}
}

// prefixOf writes the compound prefix of b for the item f reads: each
// prefix attribute's value and a separator.
func (b *beacon) prefixOf(f *facts) (string, error) {
	var sb strings.Builder
	for _, p := range b.prefix {
		av, err := f.attribute(p.name, fmt.Sprintf("for the beacon of %s", b.field.name))
		if err == nil {
			var v string
			if v, err = contextValue(av); err == nil {
				sb.WriteString(v + beaconSeparator)
				continue
			}
			err = fmt.Errorf("attribute %s, a prefix of the beacon of %s: %w", p.name, b.field.name, err)
		}
		return "", err
	}
	return sb.String(), nil
}

// digestOf returns the digest of a stored beacon: what follows its prefix,
// or "" when it is not one b makes (another length, say, after Bits
// changed), so that it is not written back.
func (b *beacon) digestOf(av types.AttributeValue) string {
	s, ok := av.(*types.AttributeValueMemberS)
	if !ok {
		return ""
	}
	d := s.Value[strings.LastIndex(s.Value, beaconSeparator)+1:]
	if len(d) != b.spec.Width() || strings.Trim(d, "0123456789abcdef") != "" {
		return ""
	}
	return d
}

// reserveBeacons reserves the beacons of item number i, held in v, and
// puts them in its attributes m, to be filled once its values are sealed.
func (r *Repo[T]) reserveBeacons(s *sealing, i int, v reflect.Value, m attrMap) error {
	for _, b := range r.plan.beacons {
		fv, err := v.FieldByIndexErr(b.field.index)
		if err != nil { // behind a nil embedded pointer: no value
			continue
		}
		av, err := s.addBeacon(i, b, cell.Of(fv.Addr().Interface()))
		if err != nil {
			return err
		}
		if av != nil {
			m[b.attr.name] = av
		}
	}
	return nil
}

// carriedBeacon is the beacon digest loaded with a value; see opening.carried.
type carriedBeacon struct {
	digest string
	ok     bool
}

// carriedBeacon returns the digest of the beacon stored in raw for the
// value at bound, when the value has a beacon: "" when the item has none.
func (p *plan) carriedBeacon(bound string, raw attrMap) carriedBeacon {
	for _, b := range p.beacons {
		if b.bound == bound {
			return carriedBeacon{digest: b.digestOf(raw[b.attr.name]), ok: true}
		}
	}
	return carriedBeacon{}
}

// reserveUpdateBeacon reserves the beacon of the value an update step
// Sets, held in v, when its attribute has a beacon.
func (r *Repo[T]) reserveUpdateBeacon(s *sealing, st *updateStep, v reflect.Value) error {
	b := r.plan.beaconOf[st.top.name]
	if b == nil || st.nested || st.kind != updateSet {
		return nil
	}
	var err error
	if st.beacon, err = s.addBeacon(0, b, cell.Of(v.Addr().Interface())); err != nil {
		return r.invalidUpdate("Set %q: %w", st.path, err)
	}
	return nil
}

// beaconSteps adds to an update's steps those that keep beacons in step
// with the values: a Set of a value Sets its beacon, a Remove removes it.
func (r *Repo[T]) beaconSteps(steps []updateStep) []updateStep {
	for _, st := range steps {
		b := r.plan.beaconOf[st.top.name]
		if b == nil || st.nested {
			continue
		}
		step := updateStep{updateAction: updateAction{kind: updateRemove, path: b.attr.name}, top: b.attr}
		if st.kind == updateSet && st.beacon != nil {
			step.kind, step.av = updateSet, st.beacon
		}
		steps = append(steps, step)
	}
	return steps
}

// checkBeaconChanges refuses an update that would leave a compound beacon
// out of step with its prefix: the item is not read, so a Set of the value
// must Set the prefix attributes too, and a change of a prefix attribute
// must Set or remove the value. A key attribute as prefix comes from the
// update's key and cannot change.
func (r *Repo[T]) checkBeaconChanges(steps []updateStep) error {
	for _, b := range r.plan.beacons {
		value := stepOn(steps, b.field)
		for _, p := range b.prefix {
			if slices.Contains(r.plan.keyNames(), p.name) {
				continue
			}
			if err := r.checkPrefixStep(b, p, value, stepOn(steps, p)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Repo[T]) checkPrefixStep(b *beacon, p *attr, value, prefix *updateStep) error {
	switch {
	case value != nil && value.kind == updateSet && (prefix == nil || prefix.kind != updateSet || prefix.nested):
		return r.invalidUpdate("Set %q: its beacon begins with the value of %q; Set %q in the same update", value.path, p.name, p.name)
	case prefix != nil && value == nil:
		return r.invalidUpdate("%s %q: the beacon of %q begins with it; Set or Remove %q in the same update", prefix.kind, prefix.path, b.field.name, b.field.name)
	}
	return nil
}

// stepOn returns the first step on attribute a, or nil.
func stepOn(steps []updateStep, a *attr) *updateStep {
	for i := range steps {
		if steps[i].top == a {
			return &steps[i]
		}
	}
	return nil
}

// isBeacon reports whether name is the attribute of one of T's beacons.
func (p *plan) isBeacon(name string) bool {
	return slices.ContainsFunc(p.beacons, func(b *beacon) bool { return b.attr.name == name })
}
