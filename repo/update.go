package repo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/internal/attrkind"
	"github.com/dynoseal/dynoseal/internal/convert"
)

// ErrInvalidUpdate is matched by every error that an Update is rejected
// with before a request is sent (unknown attribute, key attribute, value
// that does not fit the field, action an encrypted attribute cannot take,
// encryption context the update does not carry).
var ErrInvalidUpdate = errors.New("dynoseal: invalid update")

// Update lists the changes one UpdateItem call makes to an item. Start with
// NewUpdate and chain its methods; each returns a new Update, so a partly
// built one can be shared and extended without surprises.
//
// Paths are attribute names as `dynamodbav` tags give them ("email"), or
// paths into documents and lists ("address.city", "tags[0]"). The first name
// of a path must be an attribute of the repository's item type, and key
// attributes cannot change.
//
// A value for a top-level attribute is marshalled the way the item's field
// is, honouring its `dynamodbav` options (e.g. ",stringset"), and must fit the
// field's type (numbers may change width, strings may change named type). A
// value for a deeper path is marshalled with attributevalue's defaults.
//
// Encrypted attributes can be Set (to a field.Encrypted or to a plain value of
// its type, which is sealed before the request) and removed; every other
// action on them is rejected, as is Set on a path inside one.
//
// When a spec takes encryption context from the item (enc.Spec.ContextFrom),
// an update that seals a value under it must Set the context attributes too,
// since the item is not read. Stored values stay bound to the old context, so
// unless the update also Sets or removes every encrypted attribute sealed with
// a context attribute, it requires that attribute unchanged (a condition
// failure otherwise), and any action on it but Set is rejected.
type Update struct {
	actions []updateAction
}

type updateKind int

const (
	updateSet updateKind = iota
	updateSetIfNotExists
	updateAdd
	updateRemove
	updateAppend
	updateDeleteFromSet
)

func (k updateKind) String() string {
	return [...]string{"Set", "SetIfNotExists", "Add", "Remove", "Append", "DeleteFromSet"}[k]
}

type updateAction struct {
	kind  updateKind
	path  string
	value any
}

// NewUpdate returns an empty update.
func NewUpdate() Update { return Update{} }

func (u Update) with(a updateAction) Update {
	// Clip so that two Updates extended from one never share a backing array.
	return Update{actions: append(slices.Clip(u.actions), a)}
}

// Set sets path to value. Setting an encrypted attribute seals value first.
func (u Update) Set(path string, value any) Update {
	return u.with(updateAction{kind: updateSet, path: path, value: value})
}

// SetIfNotExists sets path to value unless the attribute already has one.
func (u Update) SetIfNotExists(path string, value any) Update {
	return u.with(updateAction{kind: updateSetIfNotExists, path: path, value: value})
}

// Add adds a number to a number attribute, or the members of a set to a set
// attribute; a missing attribute counts as 0 or the empty set.
func (u Update) Add(path string, value any) Update {
	return u.with(updateAction{kind: updateAdd, path: path, value: value})
}

// Remove removes the attributes (or document members, or list elements) at paths.
func (u Update) Remove(paths ...string) Update {
	for _, p := range paths {
		u = u.with(updateAction{kind: updateRemove, path: p})
	}
	return u
}

// Append appends to a list attribute, creating it if missing. value is a
// list (a slice of the field's type) or one element.
func (u Update) Append(path string, value any) Update {
	return u.with(updateAction{kind: updateAppend, path: path, value: value})
}

// DeleteFromSet removes the members of the set value from a set attribute.
func (u Update) DeleteFromSet(path string, value any) Update {
	return u.with(updateAction{kind: updateDeleteFromSet, path: path, value: value})
}

// Update changes the item with key k as u says and returns, with
// ReturnNew or ReturnOld, the item after or before the change with its
// encrypted fields opened; otherwise the zero T. Like DynamoDB, it creates the
// item when none has the key, unless IfExists says otherwise (ReturnOld then
// gives the zero T). The update has happened whenever the error is nil; a
// returned value that cannot be opened (KMS unreachable, a damaged value)
// stays sealed, and its Value gives the reason.
//
// The encrypted values it sets are sealed with one data key per KMS key and
// context for the whole call. It also takes If, IfExists, IfNotExists and
// ReturnCurrentOnFailure; a condition that does not hold gives a
// *ConditionFailedError[T].
func (r *Repo[T]) Update(ctx context.Context, k Key, u Update, opts ...WriteOption) (_ T, err error) {
	ctx, sp := r.trace(ctx, "Update", 1)
	defer sp.end(&err)
	var zero T
	o, err := writeOptions("Update", knobReturnOld|knobReturnNew, opts)
	if err != nil {
		return zero, err
	}
	db, err := r.db()
	if err != nil {
		return zero, err
	}
	in, vc, err := r.updateInput(ctx, k, u, o)
	if err != nil {
		return zero, err
	}
	out, err := db.UpdateItem(ctx, in)
	if err != nil {
		return zero, r.writeError(ctx, "update", k, o, vc, err)
	}
	if in.ReturnValues == "" || len(out.Attributes) == 0 {
		return zero, nil
	}
	return r.returned(ctx, out.Attributes), nil
}

// updateInput checks u against T, seals the encrypted values it sets and
// builds the request. Every check runs before KMS is asked for a data key.
func (r *Repo[T]) updateInput(ctx context.Context, k Key, u Update, o WriteOptions) (*dynamodb.UpdateItemInput, *versionCheck, error) {
	pu, err := r.prepareUpdate(k, u, o)
	if err != nil {
		return nil, nil, err
	}
	defer pu.seal.s.release()
	if err := pu.seal.run(ctx, r.encryptor); err != nil {
		return nil, nil, err
	}
	in, err := pu.input()
	return in, pu.vc, err
}

// preparedUpdate is an update checked and marshalled, with its encrypted
// values reserved, to be sealed (alone or with the other writes of a
// transaction) before its request is built.
type preparedUpdate struct {
	table string
	key   attrMap
	steps []updateStep
	cond  *writeCondition
	pins  []expression.ConditionBuilder
	vc    *versionCheck
	o     WriteOptions
	seal  pendingSeal
}

// prepareUpdate checks u and o against T and marshals the values u sets.
func (r *Repo[T]) prepareUpdate(k Key, u Update, o WriteOptions) (*preparedUpdate, error) {
	vc, err := r.optionVersion("update", o)
	if err != nil {
		return nil, err
	}
	cond, err := r.condition("update", o, vc)
	if err != nil {
		return nil, err
	}
	km, steps, seal, err := r.updateSteps(k, u)
	if err != nil {
		return nil, err
	}
	pu := &preparedUpdate{table: r.table, key: km, steps: r.withVersionStep(steps), cond: cond, pins: r.pins(steps), vc: vc, o: o, seal: seal}
	if vc != nil && len(pu.pins) > 0 {
		vc.alone = false
	}
	return pu, nil
}

// updateSteps checks u against T and marshals the values it sets for the
// item with key k, reserving the encrypted ones.
func (r *Repo[T]) updateSteps(k Key, u Update) (attrMap, []updateStep, pendingSeal, error) {
	km, err := r.keyMap(k)
	if err != nil {
		return nil, nil, pendingSeal{}, err
	}
	steps, err := r.checkUpdate(u)
	if err != nil {
		return nil, nil, pendingSeal{}, err
	}
	seal, err := r.updateValues(km, steps)
	return km, r.beaconSteps(steps), seal, err
}

// withVersionStep adds to the steps of an update of a versioned type the
// step that increases the version, so that writers holding the item as it
// was see that it changed.
func (r *Repo[T]) withVersionStep(steps []updateStep) []updateStep {
	if r.plan.version == nil {
		return steps
	}
	return append(steps, updateStep{updateAction: updateAction{kind: updateAdd, path: r.plan.version.name}, top: r.plan.version,
		av: &types.AttributeValueMemberN{Value: "1"}})
}

// expression builds the update's expressions, once its values are sealed.
func (pu *preparedUpdate) expression() (expression.Expression, error) {
	var conds []expression.ConditionBuilder
	if pu.cond != nil {
		conds = append(conds, pu.cond.builder)
	}
	b := expression.NewBuilder().WithUpdate(updateBuilder(pu.steps))
	if c, ok := and(append(conds, pu.pins...)); ok {
		b = b.WithCondition(c)
	}
	e, err := b.Build()
	if err != nil {
		return e, fmt.Errorf("repo %s: update: %w", pu.table, err)
	}
	return e, nil
}

// input builds the UpdateItem request, once the values are sealed.
func (pu *preparedUpdate) input() (*dynamodb.UpdateItemInput, error) {
	e, err := pu.expression()
	if err != nil {
		return nil, err
	}
	in := &dynamodb.UpdateItemInput{
		TableName: aws.String(pu.table), Key: pu.key, UpdateExpression: e.Update(), ConditionExpression: e.Condition(),
		ExpressionAttributeNames: e.Names(), ExpressionAttributeValues: e.Values(), ReturnValuesOnConditionCheckFailure: onFailure(pu.o, pu.vc),
	}
	switch {
	case pu.o.ReturnNew:
		in.ReturnValues = types.ReturnValueAllNew
	case pu.o.ReturnOld:
		in.ReturnValues = types.ReturnValueAllOld
	}
	return in, nil
}

// updateStep is one action of an update, checked against the item type.
type updateStep struct {
	updateAction
	top    *attr // the attribute of the path's first name
	nested bool  // the path goes below the top-level attribute
	av     types.AttributeValue
	// pinned: the step Sets an attribute that specs take encryption context
	// from, to give that context to values it seals, while other values
	// sealed with it stay as stored; the update then requires it unchanged.
	pinned bool
	// beacon is the reserved beacon of the value a step Sets, when its
	// attribute has one (nil: the value has none).
	beacon *types.AttributeValueMemberS
}

// updateValues marshals each step's value as its attribute would be
// marshalled in an item, and reserves the encrypted values among them, to
// be sealed with the context the update itself Sets.
func (r *Repo[T]) updateValues(km attrMap, steps []updateStep) (pendingSeal, error) {
	s := newSealing(r.plan)
	given := maps.Clone(km)
	for i := range steps {
		st := &steps[i]
		if err := r.updateValue(s, st); err != nil {
			s.release()
			return pendingSeal{}, err
		}
		if st.pinned && st.kind != updateSet {
			s.release()
			return pendingSeal{}, r.invalidUpdate("Set %q: an empty value removes the attribute, and values sealed with encryption context from it would no longer open", st.path)
		}
		if st.kind == updateSet && !st.nested && st.top.node == nil {
			given[st.top.name] = st.av
		}
	}
	absent := func(name, _ string) error {
		return fmt.Errorf("attribute %s is not Set by this update; Set it in the same update, so that the value is sealed for the item's own context", name)
	}
	failed := func(err error) error {
		if errors.Is(err, enc.ErrItemContext) {
			// Found before any KMS call: the update lacks what sealing needs.
			return r.invalidUpdate("%w", err)
		}
		return fmt.Errorf("repo %s: update: %w", r.table, err)
	}
	return pendingSeal{s: s, items: []attrMap{given}, absent: absent, failed: failed}, nil
}

// updateValue marshals one step's value; a top-level value goes through a
// one-field struct with its field's type and tag, reserving its encrypted
// values in s.
func (r *Repo[T]) updateValue(s *sealing, st *updateStep) error {
	switch {
	case st.kind == updateRemove:
		return nil
	case st.nested:
		return r.marshalNested(st)
	}
	w := reflect.New(st.top.wrapper).Elem()
	if !r.placeValue(w.Field(0), st) {
		return r.invalidUpdate("%s %q: a %T does not fit field %s (%s)", st.kind, st.path, st.value, st.top.goName, st.top.typ)
	}
	if st.top.node != nil {
		one := &structNode{fields: []*attr{{name: st.top.name, index: []int{0}, node: st.top.node}}}
		if err := s.add(0, w, one); err != nil {
			return r.invalidUpdate("%s %q: %w", st.kind, st.path, err)
		}
	}
	m, err := marshalMap(w.Interface())
	if err != nil {
		return r.invalidUpdate("%s %q: marshal: %w", st.kind, st.path, err)
	}
	r.plan.stampUpdate(st, m, w)
	if st.av = m[st.top.name]; st.av == nil && st.kind == updateSet {
		// An omitempty field with an empty value: Set removes the
		// attribute, leaving the item as Put would leave it.
		st.kind = updateRemove
	}
	if err := r.checkValueKind(*st); err != nil {
		return err
	}
	return r.reserveUpdateBeacon(s, st, w.Field(0))
}

// placeValue stores a step's value in dst, converting it to the field's
// type; Append takes one element as well as a list.
func (r *Repo[T]) placeValue(dst reflect.Value, st *updateStep) bool {
	if convert.Assign(dst, st.value, r.plan.isCell) {
		return true
	}
	if st.kind != updateAppend || dst.Kind() != reflect.Slice {
		return false
	}
	list := reflect.MakeSlice(dst.Type(), 1, 1)
	if !convert.Assign(list.Index(0), st.value, r.plan.isCell) {
		return false
	}
	dst.Set(list)
	return true
}

// marshalNested marshals the value of a step below the top level, where
// the item type says nothing about it.
func (r *Repo[T]) marshalNested(st *updateStep) error {
	av, err := attributevalue.Marshal(st.value)
	if err != nil {
		return r.invalidUpdate("%s %q: marshal value: %w", st.kind, st.path, err)
	}
	if _, isList := av.(*types.AttributeValueMemberL); st.kind == updateAppend && !isList {
		av = &types.AttributeValueMemberL{Value: []types.AttributeValue{av}}
	}
	st.av = av
	return r.checkValueKind(*st)
}

// updateBuilder turns the checked, marshalled steps into the update expression.
func updateBuilder(steps []updateStep) expression.UpdateBuilder {
	var ub expression.UpdateBuilder
	for _, st := range steps {
		name := expression.Name(st.path)
		switch st.kind {
		case updateSet:
			ub = ub.Set(name, expression.Value(st.av))
		case updateSetIfNotExists:
			ub = ub.Set(name, expression.IfNotExists(name, expression.Value(st.av)))
		case updateAdd:
			ub = ub.Add(name, expression.Value(st.av))
		case updateRemove:
			ub = ub.Remove(name)
		case updateAppend:
			empty := &types.AttributeValueMemberL{Value: []types.AttributeValue{}}
			ub = ub.Set(name, expression.ListAppend(expression.IfNotExists(name, expression.Value(empty)), expression.Value(st.av)))
		case updateDeleteFromSet:
			ub = ub.Delete(name, expression.Value(st.av))
		}
	}
	return ub
}

// pins are the conditions that keep each pinned attribute unchanged: it is
// Set only to give the context for sealing, and other values sealed with it
// stop opening if it changes. A new item, or one without the attribute,
// holds no value sealed with it.
func (r *Repo[T]) pins(steps []updateStep) []expression.ConditionBuilder {
	var out []expression.ConditionBuilder
	for _, st := range steps {
		if st.pinned {
			out = append(out, expression.Name(r.plan.hash.name).AttributeNotExists().Or(
				expression.Name(st.path).AttributeNotExists(),
				expression.Name(st.path).Equal(expression.Value(st.av))))
		}
	}
	return out
}

// checkContextChanges handles actions on an attribute that specs take
// encryption context from. Stored values stay bound to the context they were
// sealed with, so the attribute may change only when every attribute sealed
// with it is Set or removed as a whole in the same update. Otherwise a Set of
// it is pinned: it only supplies the context for the values the update seals,
// and the update requires the stored value to be the same. Any other action
// is rejected.
func (r *Repo[T]) checkContextChanges(steps []updateStep) error {
	for i, st := range steps {
		for _, reader := range r.plan.sealedWith[st.top.name] {
			replaced := slices.ContainsFunc(steps, func(o updateStep) bool {
				return !o.nested && o.top.name == reader && (o.kind == updateSet || o.kind == updateRemove)
			})
			switch {
			case replaced:
			case st.kind == updateSet && !st.nested:
				steps[i].pinned = true
			default:
				return r.invalidUpdate("%s %q: encrypted attribute %q is sealed with encryption context from %q; Set or Remove %q in the same update, or its stored values no longer open", st.kind, st.path, reader, st.top.name, reader)
			}
		}
	}
	return nil
}

// checkUpdate checks every action's path against T and the actions an
// encrypted attribute can take, before any value is touched.
func (r *Repo[T]) checkUpdate(u Update) ([]updateStep, error) {
	if len(u.actions) == 0 {
		return nil, r.invalidUpdate("no changes")
	}
	steps := make([]updateStep, 0, len(u.actions))
	for _, a := range u.actions {
		st, err := r.checkAction(a, steps)
		if err != nil {
			return nil, err
		}
		steps = append(steps, st)
	}
	if err := r.checkContextChanges(steps); err != nil {
		return nil, err
	}
	if err := r.checkBeaconChanges(steps); err != nil {
		return nil, err
	}
	return steps, nil
}

func (r *Repo[T]) checkAction(a updateAction, prev []updateStep) (updateStep, error) {
	p := r.plan
	if a.path == "" {
		return updateStep{}, r.invalidUpdate("%s: empty path", a.kind)
	}
	top, nested := topName(a.path)
	f, ok := p.top[top]
	switch {
	case !ok:
		return updateStep{}, r.invalidUpdate("%s %q: %s has no attribute %q", a.kind, a.path, p.typ, top)
	case slices.Contains(p.keyNames(), top):
		return updateStep{}, r.invalidUpdate("%s %q: %q is a key attribute and cannot change", a.kind, a.path, top)
	case p.version != nil && top == p.version.name:
		return updateStep{}, r.invalidUpdate("%s %q: %q is the item's version, which every update increases by one; use IfVersion to require a version", a.kind, a.path, top)
	}
	for _, st := range prev {
		if pathsOverlap(st.path, a.path) {
			return updateStep{}, r.invalidUpdate("paths %q and %q overlap; DynamoDB takes one action per path", st.path, a.path)
		}
	}
	leaf := f.typ
	if nested {
		var missing string
		// attributevalue matches member names without regard to case on
		// read, so a path that misses a struct's name by case alone would
		// write beside an encrypted member and be read back as it.
		if leaf, missing = p.walkPath(parsePath(a.path)); missing != "" {
			return updateStep{}, r.invalidUpdate("%s %q: %q is not an attribute of the document at that path (names match exactly)", a.kind, a.path, missing)
		}
	}
	if a.kind != updateRemove && leaf != nil && p.holds[leaf] {
		switch {
		case a.kind == updateSet && nested:
			return updateStep{}, r.invalidUpdate("Set %q: the path holds encrypted values; set the whole attribute %q", a.path, top)
		case a.kind != updateSet:
			return updateStep{}, r.invalidUpdate("%s %q: the attribute holds encrypted values, which can only be Set or removed", a.kind, a.path)
		}
	}
	return updateStep{updateAction: a, top: f, nested: nested}, nil
}

// checkValueKind rejects values that DynamoDB would refuse for the action,
// with an error that says what would fit.
func (r *Repo[T]) checkValueKind(st updateStep) error {
	if st.av == nil && st.kind != updateRemove {
		return r.invalidUpdate("%s %q: the value is empty and the field is omitempty", st.kind, st.path)
	}
	switch st.kind {
	case updateAdd:
		switch st.av.(type) {
		case *types.AttributeValueMemberN, *types.AttributeValueMemberSS, *types.AttributeValueMemberNS, *types.AttributeValueMemberBS:
			return nil
		}
		return r.invalidUpdate("Add %q: needs a number or a set, got %s (a slice field needs a `dynamodbav:\",stringset\"`, \",numberset\" or \",binaryset\" option to be a set)", st.path, attrkind.Of(st.av))
	case updateDeleteFromSet:
		switch st.av.(type) {
		case *types.AttributeValueMemberSS, *types.AttributeValueMemberNS, *types.AttributeValueMemberBS:
			return nil
		}
		return r.invalidUpdate("DeleteFromSet %q: needs a set, got %s (a slice field needs a `dynamodbav:\",stringset\"`, \",numberset\" or \",binaryset\" option to be a set)", st.path, attrkind.Of(st.av))
	case updateAppend:
		if _, ok := st.av.(*types.AttributeValueMemberL); !ok {
			return r.invalidUpdate("Append %q: needs a list, got %s", st.path, attrkind.Of(st.av))
		}
	}
	return nil
}

func (r *Repo[T]) invalidUpdate(format string, args ...any) error {
	return fmt.Errorf("repo %s: update: %w: %w", r.table, ErrInvalidUpdate, fmt.Errorf(format, args...))
}

// pathsOverlap reports whether a and b are the same path or one lies inside
// the other, which DynamoDB refuses in one update expression.
func pathsOverlap(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	return a == b || (strings.HasPrefix(b, a) && (b[len(a)] == '.' || b[len(a)] == '['))
}
