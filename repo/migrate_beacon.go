package repo

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
)

// beaconWork is what one page of a migration asks to bring its items'
// beacons up to date: the values to open, and then the beacons to compute.
type beaconWork struct {
	opens   []enc.OpenRequest
	openFor []int // the pending beacon of each open
	pending []pendingBeacon
}

// pendingBeacon is the beacon of one value of one item, once its plaintext
// is known.
type pendingBeacon struct {
	item   *migrant
	b      *beacon
	value  types.AttributeValue // the value as read, which the write requires
	req    enc.BeaconRequest
	prefix string
}

// backfillBeacons adds to each item the change of every beacon that does
// not hold its value's beacon: missing, stale (another key, length or
// prefix) or left behind by a removed value. Sealed values are opened for
// it, with the session's one Decrypt per distinct data key.
func (m *migration[T]) backfillBeacons(ctx context.Context, items []*migrant) error {
	if len(m.r.plan.beacons) == 0 {
		return nil
	}
	var w beaconWork
	defer w.wipe()
	for _, it := range items {
		for _, b := range m.r.plan.beacons {
			if it.err == nil {
				m.collectBeacon(it, b, &w)
			}
		}
	}
	m.openForBeacons(ctx, &w)
	return m.computeBeacons(ctx, w.pending)
}

// computeBeacons computes the beacons of the items still to be written,
// in one call, and records those that change.
func (m *migration[T]) computeBeacons(ctx context.Context, pending []pendingBeacon) error {
	var reqs []enc.BeaconRequest
	var at []*pendingBeacon
	for i := range pending {
		if p := &pending[i]; p.item.err == nil {
			reqs, at = append(reqs, p.req), append(at, p)
		}
	}
	if len(reqs) == 0 {
		return nil
	}
	digests, err := m.r.encryptor.Beacons(ctx, reqs)
	if err != nil {
		return fmt.Errorf("repo %s: migrate: beacons: %w", m.r.table, err)
	}
	for n, p := range at {
		m.recordBeacon(p, p.prefix+digests[n])
	}
	return nil
}

// collectBeacon works out what b's beacon of item needs: nothing, a
// removal, or the plaintext (at once for legacy plaintext, else by opening).
func (m *migration[T]) collectBeacon(it *migrant, b *beacon, w *beaconWork) {
	value, stored := it.raw[b.field.name], it.raw[b.attr.name]
	if value == nil || isNull(value) {
		if stored != nil {
			it.changes = append(it.changes, change{v: rawValue{steps: []rawStep{{name: b.attr.name, index: -1}}, av: stored}, spec: b.value, beacon: true})
		}
		return
	}
	f := facts{p: m.r.plan, item: it.raw}
	itemCtx, err := f.itemContext(*b.value)
	var prefix string
	if err == nil {
		prefix, err = b.prefixOf(&f)
	}
	if err != nil {
		it.err = m.r.itemFailed("migrate", m.r.keyOfRaw(it.raw), fmt.Errorf("beacon of %s: %w", b.field.name, err))
		return
	}
	p := pendingBeacon{item: it, b: b, value: value, prefix: prefix,
		req: enc.BeaconRequest{Beacon: b.spec, Attribute: b.attr.name, ItemContext: itemCtx}}
	if !sealedForm(value) {
		rv := rawValue{cell: b.field.node, av: value, path: b.field.name}
		if p.req.Plaintext, err = plaintextOf(rv); err != nil {
			it.err = m.r.itemFailed("migrate", m.r.keyOfRaw(it.raw), fmt.Errorf("beacon of %s: %w", b.field.name, err))
			return
		}
		w.pending = append(w.pending, p)
		return
	}
	key, _ := f.primaryKey()
	w.openFor = append(w.openFor, len(w.pending))
	w.opens = append(w.opens, enc.OpenRequest{Spec: *b.value, Attribute: b.field.name, Stored: value.(*types.AttributeValueMemberS).Value,
		ItemContext: itemCtx, Binding: enc.Binding{Attribute: b.bound, Key: key}})
	w.pending = append(w.pending, p)
}

// openForBeacons opens the sealed values whose beacons are to be checked;
// an item whose value does not open is reported, and not written.
func (m *migration[T]) openForBeacons(ctx context.Context, w *beaconWork) {
	if len(w.opens) == 0 {
		return
	}
	plain, errs := m.session.OpenEach(ctx, w.opens)
	for n, i := range w.openFor {
		p := &w.pending[i]
		if errs[n] != nil {
			if p.item.err == nil {
				p.item.err = m.r.itemFailed("migrate", m.r.keyOfRaw(p.item.raw), errs[n])
			}
			continue
		}
		p.req.Plaintext = plain[n]
	}
}

// recordBeacon adds the change of p's beacon to its item, unless the item
// holds that beacon already.
func (m *migration[T]) recordBeacon(p *pendingBeacon, want string) {
	stored := p.item.raw[p.b.attr.name]
	if s, ok := stored.(*types.AttributeValueMemberS); ok && s.Value == want {
		return
	}
	p.item.changes = append(p.item.changes,
		change{v: rawValue{steps: []rawStep{{name: p.b.attr.name, index: -1}}, av: stored}, spec: p.b.value, to: &types.AttributeValueMemberS{Value: want}, beacon: true},
		// The beacon is of the value as read: the write requires it so.
		change{v: rawValue{steps: []rawStep{{name: p.b.field.name, index: -1}}, av: p.value}, spec: p.b.value, beacon: true, keep: true})
}

func (w *beaconWork) wipe() {
	for _, p := range w.pending {
		clear(p.req.Plaintext)
	}
}
