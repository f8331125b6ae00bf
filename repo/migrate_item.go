package repo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/internal/cell"
)

// migrant is one item of a migration: its values that change, or why it
// cannot be migrated.
type migrant struct {
	raw     attrMap
	changes []change
	err     error
}

// change is one value of an item and its current form.
type change struct {
	v    rawValue
	spec *enc.Spec
	to   types.AttributeValue // nil: remove
	// beacon marks the changes that bring a beacon up to date; keep, a
	// value its beacon is made of, which the write requires unchanged and
	// does not set.
	beacon, keep bool
}

// requests collects what one page asks of KMS: stored values to rewrap and
// plaintexts to seal, each with the item and value it belongs to.
type requests struct {
	rewraps  []enc.RewrapRequest
	rewrapAt []*pendingChange
	// opens are the sealed values of specs with a MigrateFromSpec, to open
	// under the old spec first; openFor[n] is the rewrap of opens[n].
	opens   []enc.OpenRequest
	openFor []int
}

type pendingChange struct {
	item *migrant
	v    rawValue
}

// migrateItems migrates items read at the given attempt: their values are
// rewrapped and sealed together, then each changed item is written.
func (m *migration[T]) migrateItems(ctx context.Context, raws []attrMap, attempt int) error {
	items := make([]*migrant, len(raws))
	var reqs requests
	for i, raw := range raws {
		items[i] = &migrant{raw: raw}
		m.collect(items[i], &reqs)
	}
	if err := m.transform(ctx, &reqs); err != nil {
		return err
	}
	if err := m.backfillBeacons(ctx, items); err != nil {
		return err
	}
	conflicts := m.writeAll(ctx, items)
	if ctx.Err() != nil {
		return fmt.Errorf("repo %s: migrate: %w", m.r.table, ctx.Err())
	}
	return m.retry(ctx, conflicts, attempt)
}

// collect adds the values of item that may have to change to reqs.
func (m *migration[T]) collect(item *migrant, reqs *requests) {
	f := facts{p: m.r.plan, item: item.raw}
	m.r.plan.rawValues(item.raw, func(v rawValue) {
		if item.err != nil || isNull(v.av) {
			return
		}
		spec := v.cell.spec
		itemCtx, err := f.itemContext(spec)
		if err == nil {
			var key []enc.KeyAttribute
			key, err = f.primaryKey()
			err = cmp.Or(err, m.addRequest(item, v, spec, itemCtx, enc.Binding{Attribute: v.bound, Key: key}, reqs))
		}
		if err != nil {
			item.err = m.r.itemFailed("migrate", m.r.keyOfRaw(item.raw), enc.OpenRequest{Spec: spec, Attribute: v.path}.Fail(err))
		}
	})
}

// addRequest asks for v in its current form: rewrapped when sealed, sealed
// when plaintext.
func (m *migration[T]) addRequest(item *migrant, v rawValue, spec enc.Spec, itemCtx map[string]string, b enc.Binding, reqs *requests) error {
	req := enc.RewrapRequest{Spec: spec, Attribute: v.path, ItemContext: itemCtx, Binding: b}
	if sealedForm(v.av) {
		req.Stored = v.av.(*types.AttributeValueMemberS).Value
		if from, ok := m.o.FromSpecs[v.cell.specName]; ok {
			reqs.opens = append(reqs.opens, enc.OpenRequest{Spec: from, Attribute: v.path, Stored: req.Stored, ItemContext: itemCtx, Binding: b})
			reqs.openFor = append(reqs.openFor, len(reqs.rewraps))
		}
	} else {
		var err error
		if req.Plaintext, err = plaintextOf(v); err != nil {
			return err
		}
	}
	reqs.rewraps = append(reqs.rewraps, req)
	reqs.rewrapAt = append(reqs.rewrapAt, &pendingChange{item: item, v: v})
	return nil
}

// plaintextOf reads a plaintext value (written before the field was
// encrypted) the way its field loads it.
func plaintextOf(v rawValue) ([]byte, error) {
	p := reflect.New(v.cell.typ)
	if err := attributevalue.Unmarshal(v.av, p.Interface()); err != nil {
		return nil, err
	}
	c := cell.Of(p.Interface())
	if err := c.LoadError(); err != nil {
		return nil, err
	}
	plain, _, err := c.Pending()
	return plain, err
}

// transform rewraps (and seals) what reqs collected, in one call for the
// page, and records the changes.
func (m *migration[T]) transform(ctx context.Context, reqs *requests) error {
	if len(reqs.rewraps) == 0 {
		return nil
	}
	defer func() {
		for _, r := range reqs.rewraps {
			clear(r.Plaintext)
		}
	}()
	m.openFromSpecs(ctx, reqs)
	out, errs := m.rewrapper.Rewrap(ctx, reqs.rewraps)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("repo %s: migrate: %w", m.r.table, err)
	}
	for n, at := range reqs.rewrapAt {
		m.record(at, out[n], errs[n])
	}
	return nil
}

// openFromSpecs opens, under their old specs, the values sealed before a
// change the value does not record (its static context), and turns those
// that open into plaintexts to seal. Those that do not open stay as they
// are, for the current spec.
func (m *migration[T]) openFromSpecs(ctx context.Context, reqs *requests) {
	if len(reqs.opens) == 0 {
		return
	}
	plain, errs := m.session.OpenEach(ctx, reqs.opens)
	for n, i := range reqs.openFor {
		if errs[n] == nil {
			// Never nil: a nil plaintext is no plaintext to Rewrap.
			reqs.rewraps[i].Stored, reqs.rewraps[i].Plaintext = "", append([]byte{}, plain[n]...)
			clear(plain[n])
		}
	}
}

func (m *migration[T]) record(at *pendingChange, stored string, err error) {
	switch {
	case at.item.err != nil:
	case err != nil:
		at.item.err = m.r.itemFailed("migrate", m.r.keyOfRaw(at.item.raw), err)
	case stored != "":
		spec := at.v.cell.spec
		at.item.changes = append(at.item.changes, change{v: at.v, spec: &spec, to: &types.AttributeValueMemberS{Value: stored}})
	}
}

// writeAll writes the changed items, at most the repository's batch
// concurrency at once, and returns those a concurrent write changed.
func (m *migration[T]) writeAll(ctx context.Context, items []*migrant) []*migrant {
	var mu sync.Mutex
	var conflicts []*migrant
	sem := make(chan struct{}, m.r.batch.Concurrency)
	var wg sync.WaitGroup
	for _, it := range items {
		if !m.settle(it) {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			conflict, err := m.write(ctx, it)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case conflict:
				conflicts = append(conflicts, it)
			case err != nil && ctx.Err() == nil: // a page cut short by ctx is done again on resume
				m.fail(err)
			case err != nil:
			default:
				m.stats.Changed++
				m.stats.count(it.changes)
			}
		}()
	}
	wg.Wait()
	return conflicts
}

// settle counts an item that needs no write and says whether it needs one.
func (m *migration[T]) settle(it *migrant) bool {
	switch {
	case it.err != nil:
		m.fail(it.err)
	case len(it.changes) == 0:
		m.stats.Skipped++
	default:
		return true
	}
	return false
}

// write writes the changes of one item, requiring what it replaces to be
// as read; conflict says a concurrent write changed it first.
func (m *migration[T]) write(ctx context.Context, it *migrant) (conflict bool, err error) {
	if m.o.DryRun {
		return false, nil
	}
	if err := m.units.Wait(ctx, 1); err != nil {
		return false, err
	}
	out, err := m.db.UpdateItem(ctx, m.r.migrationUpdate(it))
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		return true, nil
	case err != nil:
		return false, m.r.itemFailed("migrate", m.r.keyOfRaw(it.raw), err)
	}
	if cc := out.ConsumedCapacity; cc != nil && aws.ToFloat64(cc.CapacityUnits) > 1 {
		m.units.Charge(aws.ToFloat64(cc.CapacityUnits) - 1)
	}
	return false, nil
}

// retry reads again the items a concurrent write changed and migrates them
// anew, or reports them once the attempts are spent.
func (m *migration[T]) retry(ctx context.Context, conflicts []*migrant, attempt int) error {
	if len(conflicts) == 0 {
		return nil
	}
	var again []attrMap
	for _, it := range conflicts {
		k := m.r.keyOfRaw(it.raw)
		if attempt >= m.o.Attempts {
			m.fail(m.r.itemFailed("migrate", k, fmt.Errorf("changed by concurrent writes %d times in a row", attempt)))
			continue
		}
		raw, err := m.reread(ctx, it.raw)
		switch {
		case errors.Is(err, errGone):
			m.stats.Skipped++
		case err != nil:
			return err
		default:
			m.stats.Retried++
			again = append(again, raw)
		}
	}
	if len(again) == 0 {
		return nil
	}
	return m.migrateItems(ctx, again, attempt+1)
}

// reread reads an item again, consistently.
func (m *migration[T]) reread(ctx context.Context, raw attrMap) (attrMap, error) {
	key := attrMap{}
	for _, name := range m.r.plan.keyNames() {
		key[name] = raw[name]
	}
	out, err := m.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(m.r.table), Key: key, ConsistentRead: aws.Bool(true)})
	switch {
	case err != nil:
		return nil, fmt.Errorf("repo %s: migrate: read again: %w", m.r.table, err)
	case out.Item == nil:
		return nil, errGone
	}
	return out.Item, nil
}

// migrationUpdate is the UpdateItem of an item's changes: each value set at
// its path, on condition that it and the attributes its context comes from
// are as read; the version, if T has one, increased.
func (r *Repo[T]) migrationUpdate(it *migrant) *dynamodb.UpdateItemInput {
	b := newExprNames()
	var sets, removes, conds []string
	for _, c := range it.changes {
		p := b.path(c.v.steps)
		switch {
		case c.keep:
		case c.to == nil:
			removes = append(removes, p)
		default:
			sets = append(sets, p+" = "+b.value(c.to))
		}
		if c.v.av == nil {
			conds = append(conds, "attribute_not_exists("+p+")")
		} else {
			conds = append(conds, p+" = "+b.value(c.v.av))
		}
	}
	for _, name := range contextAttributes(it.changes) {
		if av, ok := it.raw[name]; ok {
			conds = append(conds, b.name(name)+" = "+b.value(av))
		} else {
			conds = append(conds, "attribute_not_exists("+b.name(name)+")")
		}
	}
	var clauses []string
	if len(sets) > 0 {
		clauses = append(clauses, "SET "+strings.Join(sets, ", "))
	}
	if len(removes) > 0 {
		clauses = append(clauses, "REMOVE "+strings.Join(removes, ", "))
	}
	if v := r.plan.version; v != nil {
		clauses = append(clauses, "ADD "+b.name(v.name)+" "+b.value(&types.AttributeValueMemberN{Value: "1"}))
	}
	update := strings.Join(clauses, " ")
	key := attrMap{}
	for _, name := range r.plan.keyNames() {
		key[name] = it.raw[name]
	}
	return &dynamodb.UpdateItemInput{
		TableName: aws.String(r.table), Key: key, UpdateExpression: aws.String(update),
		ConditionExpression: aws.String(strings.Join(conds, " AND ")), ExpressionAttributeNames: b.names,
		ExpressionAttributeValues: b.values, ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal,
	}
}

// contextAttributes are the attributes the changed values' specs take
// encryption context from, sorted.
func contextAttributes(changes []change) []string {
	set := map[string]bool{}
	for _, c := range changes {
		for _, attr := range c.spec.ContextFrom {
			set[attr] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// exprNames hands out the placeholders of a hand-built expression: map keys
// and attribute names may hold any character, so every name is a
// placeholder.
type exprNames struct {
	names  map[string]string
	byName map[string]string
	values map[string]types.AttributeValue
}

func newExprNames() *exprNames {
	return &exprNames{names: map[string]string{}, byName: map[string]string{}, values: map[string]types.AttributeValue{}}
}

func (b *exprNames) name(n string) string {
	if ph, ok := b.byName[n]; ok {
		return ph
	}
	ph := "#n" + strconv.Itoa(len(b.byName))
	b.byName[n], b.names[ph] = ph, n
	return ph
}

func (b *exprNames) value(av types.AttributeValue) string {
	ph := ":v" + strconv.Itoa(len(b.values))
	b.values[ph] = av
	return ph
}

func (b *exprNames) path(steps []rawStep) string {
	var sb strings.Builder
	for i, s := range steps {
		switch {
		case s.index >= 0:
			sb.WriteString("[" + strconv.Itoa(s.index) + "]")
		case i > 0:
			sb.WriteString("." + b.name(s.name))
		default:
			sb.WriteString(b.name(s.name))
		}
	}
	return sb.String()
}
