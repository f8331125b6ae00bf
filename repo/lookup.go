package repo

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"maps"
	"reflect"
	"slices"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/internal/cell"
)

const lookupKnobs = knobFilter | knobLimit | knobSkipExpired

// Lookup yields the items whose encrypted attribute attr holds the value
// that probe holds there: probe is a T with that field set (and, where
// the field's spec takes encryption context from the item or its beacon
// has a prefix, those attributes set too, e.g. the tenant). attr must have
// a beacon (`beacon:"name"`) that keys a global secondary index
// (`repo:"gsi:NAME:hash"` on the same field).
//
// Lookup computes the probe's beacon (no KMS call when the beacon cache
// holds its key), queries the index for it, and opens the candidates,
// which share the beacon by chance as often as 2^-Bits: it yields only
// those whose value equals the probe's after the beacon's normalisation
// (TrimSpace, FoldCase). Candidates of another encryption context (another
// tenant) or prefix are filtered out by DynamoDB and never opened.
//
// It takes Filter (plain attributes, or beacons for equality), Limit
// (matches yielded in all) and SkipExpired. Errors are as for Query; a
// WriteOnly repository cannot open candidates and is refused with
// enc.ErrWriteOnly.
func (r *Repo[T]) Lookup(ctx context.Context, attr string, probe T, opts ...ReadOption) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		ctx, yield, done := r.traceSeq(ctx, "Lookup", yield)
		defer done()
		o, err := readOptions("lookup", lookupKnobs, opts)
		var m *beaconMatch
		if err == nil {
			m, err = r.probe(ctx, "lookup", attr, probe, true)
		}
		if err != nil {
			var zero T
			yield(zero, err)
			return
		}
		defer clear(m.plain)
		r.yieldMatches(ctx, m, o.Limit, opts, yield)
	}
}

// yieldMatches queries the beacon's index for m and yields the candidates
// that match, at most limit of them (0: all).
func (r *Repo[T]) yieldMatches(ctx context.Context, m *beaconMatch, limit int, opts []ReadOption, yield func(T, error) bool) {
	// Limit counts matches, not candidates: the query runs without it.
	query := slices.Concat(opts, []ReadOption{Index(m.b.index.name), func(o *ReadOptions) { o.Limit = 0 }})
	if cond, ok := and(m.context); ok {
		query = append(query, Filter(cond))
	}
	n := 0
	for item, err := range r.Query(ctx, expression.Key(m.b.attr.name).Equal(expression.Value(m.beacon)), query...) {
		if err == nil && !m.matches(reflect.ValueOf(&item).Elem()) {
			continue
		}
		n++
		if !yield(item, err) || (limit > 0 && n >= limit) {
			return
		}
	}
}

// MatchBeacon returns the condition that an item's beacon of attr is the
// beacon of the value probe holds there (computed in probe's encryption
// context, with its prefix), for Filter and If. Unlike Lookup it cannot
// tell a match from a value that shares the beacon by chance: a filter
// keeps both, a condition holds for both. Without a compound prefix, a
// value of another tenant may share the beacon too; a query by tenant (or
// a condition on it) rules those out.
func (r *Repo[T]) MatchBeacon(ctx context.Context, attr string, probe T) (expression.ConditionBuilder, error) {
	m, err := r.probe(ctx, "match beacon", attr, probe, false)
	if err != nil {
		return expression.ConditionBuilder{}, err
	}
	clear(m.plain)
	return expression.Name(m.b.attr.name).Equal(expression.Value(m.beacon)), nil
}

// beaconMatch is a probe's beacon, ready to query or compare.
type beaconMatch struct {
	b       *beacon
	beacon  string                        // the full beacon, prefix included
	context []expression.ConditionBuilder // the probe's context and prefix attributes, each equal
	plain   []byte                        // the probe's value, normalised
}

// probe computes the beacon of the value probe holds at attr.
func (r *Repo[T]) probe(ctx context.Context, op, attr string, probe T, lookup bool) (*beaconMatch, error) {
	b, err := r.lookupBeacon(op, attr, lookup)
	if err != nil {
		return nil, err
	}
	v := reflect.ValueOf(&probe).Elem()
	plain, err := probeValue(b, v)
	if err != nil {
		return nil, fmt.Errorf("repo %s: %s: %w", r.table, op, err)
	}
	var m *beaconMatch
	given, cond, err := r.probeAttributes(b, v)
	if err == nil {
		m, err = r.beaconOf(ctx, b, plain, given, cond)
	}
	if err != nil {
		clear(plain)
		return nil, fmt.Errorf("repo %s: %s %s: %w", r.table, op, attr, err)
	}
	return m, nil
}

// lookupBeacon returns the beacon of attr, checking that it can be used.
func (r *Repo[T]) lookupBeacon(op, attr string, lookup bool) (*beacon, error) {
	b := r.plan.beaconOf[attr]
	switch {
	case b == nil:
		return nil, fmt.Errorf("repo %s: %s: %s has no beacon on attribute %q (tag the field `beacon:\"name\"`)", r.table, op, r.plan.typ, attr)
	case !lookup:
		return b, nil
	case b.index == nil:
		return nil, fmt.Errorf("repo %s: %s: no index is keyed by the beacon of %q; tag field %s `repo:\"gsi:NAME:hash\"`", r.table, op, attr, b.field.goName)
	case !b.value.Mode.CanDecrypt():
		return nil, fmt.Errorf("repo %s: %s: %s mode cannot open the candidates to compare them: %w", r.table, op, b.value.Mode, enc.ErrWriteOnly)
	}
	return b, nil
}

// probeValue returns the normalised plaintext the probe holds for b.
func probeValue(b *beacon, v reflect.Value) ([]byte, error) {
	fv, err := v.FieldByIndexErr(b.field.index)
	if err != nil {
		return nil, fmt.Errorf("the probe holds no value for %s", b.field.name)
	}
	plain, ok, err := cell.Of(fv.Addr().Interface()).Known()
	switch {
	case err != nil:
		return nil, fmt.Errorf("attribute %s: %w", b.field.name, err)
	case !ok:
		return nil, fmt.Errorf("the probe holds no value for %s; set it with field.NewEncrypted", b.field.name)
	}
	defer clear(plain)
	return b.spec.Normalize(plain), nil
}

// probeAttributes marshals the attributes of probe that b's beacon takes
// besides the value (context and prefix), and the condition that an item
// holds the same.
func (r *Repo[T]) probeAttributes(b *beacon, v reflect.Value) (attrMap, []expression.ConditionBuilder, error) {
	given := attrMap{}
	var conds []expression.ConditionBuilder
	names := slices.Sorted(maps.Values(b.value.ContextFrom))
	for _, name := range appendNew(names, r.plan.beaconNeeds(b.field.name)...) {
		f := r.plan.top[name]
		fv, err := v.FieldByIndexErr(f.index)
		if err != nil {
			continue
		}
		av, err := marshalAs(f, fv)
		if err != nil {
			return nil, nil, fmt.Errorf("probe attribute %s: %w", name, err)
		}
		if av == nil || isNull(av) {
			continue
		}
		given[name] = av
		conds = append(conds, expression.Name(name).Equal(expression.Value(av)))
	}
	return given, conds, nil
}

// beaconOf computes the beacon of plain with the context and prefix given.
func (r *Repo[T]) beaconOf(ctx context.Context, b *beacon, plain []byte, given attrMap, cond []expression.ConditionBuilder) (*beaconMatch, error) {
	f := facts{p: r.plan, item: given, absent: func(name, purpose string) error {
		return fmt.Errorf("attribute %s, needed %s, is not set in the probe", name, purpose)
	}}
	prefix, err := b.prefixOf(&f)
	if err != nil {
		return nil, err
	}
	itemCtx, err := f.itemContext(*b.value)
	if err != nil {
		return nil, err
	}
	// The probe's value is normalised already; normalising again is a no-op.
	digests, err := r.encryptor.Beacons(ctx, []enc.BeaconRequest{{Beacon: b.spec, Attribute: b.attr.name, Plaintext: plain, ItemContext: itemCtx}})
	if err != nil {
		return nil, err
	}
	return &beaconMatch{b: b, beacon: prefix + digests[0], context: cond, plain: plain}, nil
}

// matches reports whether the value of item, held in v, equals the
// probe's, normalised.
func (m *beaconMatch) matches(v reflect.Value) bool {
	fv, err := v.FieldByIndexErr(m.b.field.index)
	if err != nil {
		return false
	}
	plain, ok, err := cell.Of(fv.Addr().Interface()).Known()
	if err != nil || !ok {
		return false
	}
	defer clear(plain)
	got := m.b.spec.Normalize(plain)
	defer clear(got)
	return bytes.Equal(got, m.plain)
}
