package repo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
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
// gives the zero T).
//
// The encrypted values it sets are sealed with one data key per KMS key and
// context for the whole call. It also takes If, IfExists, IfNotExists and
// ReturnCurrentOnFailure; a condition that does not hold gives a
// *ConditionFailedError[T].
func (r *Repo[T]) Update(ctx context.Context, k Key, u Update, opts ...WriteOption) (T, error) {
	var zero T
	o, err := writeOptions("Update", knobReturnOld|knobReturnNew, opts)
	if err != nil {
		return zero, err
	}
	cond, err := r.condition("update", o)
	if err != nil {
		return zero, err
	}
	db, err := r.db()
	if err != nil {
		return zero, err
	}
	km, err := r.keyMap(k)
	if err != nil {
		return zero, err
	}
	ub, guard, err := r.updateExpression(ctx, k, u)
	if err != nil {
		return zero, err
	}
	b := expression.NewBuilder().WithUpdate(ub)
	switch {
	case cond != nil && guard != nil:
		b = b.WithCondition(cond.builder.And(*guard))
	case cond != nil:
		b = b.WithCondition(cond.builder)
	case guard != nil:
		b = b.WithCondition(*guard)
	}
	e, err := b.Build()
	if err != nil {
		return zero, fmt.Errorf("repo %s: update: %w", r.table, err)
	}
	in := &dynamodb.UpdateItemInput{
		TableName:                           aws.String(r.table),
		Key:                                 km,
		UpdateExpression:                    e.Update(),
		ConditionExpression:                 e.Condition(),
		ExpressionAttributeNames:            e.Names(),
		ExpressionAttributeValues:           e.Values(),
		ReturnValuesOnConditionCheckFailure: onFailure(o),
	}
	switch {
	case o.ReturnNew:
		in.ReturnValues = types.ReturnValueAllNew
	case o.ReturnOld:
		in.ReturnValues = types.ReturnValueAllOld
	}
	out, err := db.UpdateItem(ctx, in)
	if err != nil {
		return zero, r.writeError(ctx, "update", k, o, err)
	}
	if in.ReturnValues == "" || len(out.Attributes) == 0 {
		return zero, nil
	}
	return r.Unmarshal(ctx, out.Attributes)
}

// updateStep is one action of an update, checked against the item type.
type updateStep struct {
	updateAction
	top    attrField // the field of the path's first name
	nested bool      // the path goes below the top-level attribute
	av     types.AttributeValue
	// pinned: the step Sets an attribute that specs take encryption context
	// from, to give that context to values it seals, while other values
	// sealed with it stay as stored; the update then requires it unchanged.
	pinned bool
}

// updateExpression checks u against T, seals the encrypted values it sets
// and builds the update expression. Every check runs before KMS is asked
// for a data key.
func (r *Repo[T]) updateExpression(ctx context.Context, k Key, u Update) (expression.UpdateBuilder, *expression.ConditionBuilder, error) {
	var ub expression.UpdateBuilder
	if len(u.actions) == 0 {
		return ub, nil, r.invalidUpdate("no changes")
	}
	steps, err := r.checkUpdate(u)
	if err != nil {
		return ub, nil, err
	}

	// Top-level values go into items of type T, so that they are sealed and
	// marshalled exactly as Put would seal and marshal them. Values that hold
	// encrypted fields (only Set takes them) go into a second item, sealed
	// last, so that no KMS call is made for an update that fails a check.
	plain, sealed := new(T), new(T)
	var toSeal []*updateStep
	for i := range steps {
		st := &steps[i]
		if st.kind == updateRemove || st.nested {
			continue
		}
		item := plain
		if containsCells(st.top.typ, map[reflect.Type]bool{}) {
			item = sealed
			toSeal = append(toSeal, st)
		}
		if err := r.place(reflect.ValueOf(item).Elem(), st); err != nil {
			return ub, nil, err
		}
		// Plain values set alongside go into the sealed item too: a spec's
		// ContextFrom reads its encryption context from there.
		if item == plain && st.kind == updateSet {
			if err := r.place(reflect.ValueOf(sealed).Elem(), st); err != nil {
				return ub, nil, err
			}
		}
	}
	plainMap, err := marshalMap(plain)
	if err != nil {
		return ub, nil, r.invalidUpdate("marshal: %w", err)
	}
	for i := range steps {
		st := &steps[i]
		switch {
		case st.kind == updateRemove || slices.Contains(toSeal, st):
			continue // a Set of encrypted values takes any value that fits the field
		case st.nested:
			if err := r.marshalNested(st); err != nil {
				return ub, nil, err
			}
		default:
			r.takeValue(st, plainMap)
		}
		if err := r.checkValueKind(*st); err != nil {
			return ub, nil, err
		}
	}
	// Checked before sealing, so a refused update makes no KMS call.
	var guard *expression.ConditionBuilder
	for _, st := range steps {
		if !st.pinned {
			continue
		}
		if st.kind != updateSet {
			return ub, nil, r.invalidUpdate("Set %q: an empty value removes the attribute, and values sealed with encryption context from it would no longer open", st.path)
		}
		// The attribute is Set only to give the context for sealing: it
		// must not change, or other values sealed with it stop opening.
		// A new item, or one without the attribute, holds no value sealed
		// with it.
		same := expression.Name(r.hash.name).AttributeNotExists().Or(
			expression.Name(st.path).AttributeNotExists(),
			expression.Name(st.path).Equal(expression.Value(st.av)))
		if guard != nil {
			same = guard.And(same)
		}
		guard = &same
	}
	if len(toSeal) > 0 {
		if err := r.marshalKeyInto(k, sealed); err != nil {
			return ub, nil, err
		}
		if err := r.sealUpdateValues(ctx, sealed, r.givenAttributes(steps)); err != nil {
			if errors.Is(err, enc.ErrItemContext) {
				// Found before any KMS call: the update lacks what sealing needs.
				return ub, nil, r.invalidUpdate("%w", err)
			}
			return ub, nil, err
		}
		sealedMap, err := marshalMap(sealed)
		if err != nil {
			return ub, nil, fmt.Errorf("repo %s: update: marshal: %w", r.table, err)
		}
		for _, st := range toSeal {
			r.takeValue(st, sealedMap)
		}
	}

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
	return ub, guard, nil
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
	return nil
}

// takeValue picks a top-level step's marshalled value out of the item's
// attributes. An omitempty field with an empty value has none: Set then
// removes the attribute, leaving the item as Put would leave it, and any
// other action is refused by checkValueKind.
func (r *Repo[T]) takeValue(st *updateStep, m map[string]types.AttributeValue) {
	av, ok := m[st.top.name]
	if !ok && st.kind == updateSet {
		st.kind = updateRemove
		return
	}
	st.av = av
}

// sealUpdateValues seals the pending encrypted values of item, which holds
// the update's top-level values and the item's key, sharing one data key per
// KMS key and context. It is the one place where Update seals. given names
// the attributes of item that hold real values; encryption context is read
// from those only.
func (r *Repo[T]) sealUpdateValues(ctx context.Context, item *T, given map[string]bool) error {
	s := sealer{encryptor: r.encryptor, plans: r.plans, item: r.item, given: given}
	if err := s.add(reflect.ValueOf(item).Elem()); err != nil {
		return err
	}
	return s.seal(ctx)
}

// givenAttributes names the attributes whose values the synthetic item of
// an update holds: the key, and the top-level attributes the update Sets.
func (r *Repo[T]) givenAttributes(steps []updateStep) map[string]bool {
	given := map[string]bool{r.hash.name: true}
	if r.rng != nil {
		given[r.rng.name] = true
	}
	for _, st := range steps {
		if st.kind == updateSet && !st.nested {
			given[st.top.name] = true
		}
	}
	return given
}

// contextReaders maps each attribute that specs take encryption context
// from to the top-level attributes of t holding values sealed with it,
// directly or in nested documents.
func contextReaders(t reflect.Type, plans map[reflect.Type]*cellPlan) map[string][]string {
	readers := map[string][]string{}
	for _, cf := range plans[t].fields {
		from := map[string]bool{}
		contextSources(plans, t, cf, from, map[reflect.Type]bool{})
		for attr := range from {
			readers[attr] = append(readers[attr], cf.name)
		}
	}
	for attr := range readers {
		slices.Sort(readers[attr])
	}
	return readers
}

// contextSources adds to from the attributes that the spec of cf, a field
// of struct type owner, and the specs of the fields nested in it take
// encryption context from.
func contextSources(plans map[reflect.Type]*cellPlan, owner reflect.Type, cf cellField, from map[string]bool, seen map[reflect.Type]bool) {
	if cf.hasSpec {
		for _, attr := range cf.spec.ContextFrom {
			from[attr] = true
		}
	}
	inner := structUnder(fieldsByName(owner)[cf.name].typ)
	if inner == nil || isCell(inner) || seen[inner] || plans[inner] == nil {
		return
	}
	seen[inner] = true
	for _, f := range plans[inner].fields {
		contextSources(plans, inner, f, from, seen)
	}
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
		for _, reader := range r.item.sealedWith[st.top.name] {
			replaced := slices.ContainsFunc(steps, func(o updateStep) bool {
				return !o.nested && o.top.name == reader && (o.kind == updateSet || o.kind == updateRemove)
			})
			if replaced {
				continue
			}
			if st.kind == updateSet && !st.nested {
				steps[i].pinned = true
				continue
			}
			return r.invalidUpdate("%s %q: encrypted attribute %q is sealed with encryption context from %q; Set or Remove %q in the same update, or its stored values no longer open", st.kind, st.path, reader, st.top.name, reader)
		}
	}
	return nil
}

// checkUpdate checks every action's path against T and the actions an
// encrypted attribute can take, before any value is touched.
func (r *Repo[T]) checkUpdate(u Update) ([]updateStep, error) {
	t := reflect.TypeFor[T]()
	fields := fieldsByName(t)
	steps := make([]updateStep, 0, len(u.actions))
	for _, a := range u.actions {
		if a.path == "" {
			return nil, r.invalidUpdate("%s: empty path", a.kind)
		}
		top, nested := topName(a.path)
		f, ok := fields[top]
		if !ok {
			return nil, r.invalidUpdate("%s %q: %s has no attribute %q", a.kind, a.path, t, top)
		}
		if top == r.hash.name || (r.rng != nil && top == r.rng.name) {
			return nil, r.invalidUpdate("%s %q: %q is a key attribute and cannot change", a.kind, a.path, top)
		}
		for _, prev := range steps {
			if pathsOverlap(prev.path, a.path) {
				return nil, r.invalidUpdate("paths %q and %q overlap; DynamoDB takes one action per path", prev.path, a.path)
			}
		}
		if a.kind != updateRemove {
			leaf := f.typ
			if nested {
				leaf = typeAtPath(t, a.path)
			}
			if leaf != nil && containsCells(leaf, map[reflect.Type]bool{}) {
				switch {
				case a.kind == updateSet && nested:
					return nil, r.invalidUpdate("Set %q: the path holds encrypted values; set the whole attribute %q", a.path, top)
				case a.kind != updateSet:
					return nil, r.invalidUpdate("%s %q: the attribute holds encrypted values, which can only be Set or removed", a.kind, a.path)
				}
			}
		}
		steps = append(steps, updateStep{updateAction: a, top: f, nested: nested})
	}
	if err := r.checkContextChanges(steps); err != nil {
		return nil, err
	}
	return steps, nil
}

// place stores a top-level step's value in the item's field, converting it
// to the field's type.
func (r *Repo[T]) place(item reflect.Value, st *updateStep) error {
	dst, err := fieldForWrite(item, st.top.index)
	if err != nil {
		return r.invalidUpdate("%s %q: %w", st.kind, st.path, err)
	}
	if assign(dst, st.value) {
		return nil
	}
	// Append takes one element as well as a list.
	if st.kind == updateAppend && dst.Kind() == reflect.Slice {
		list := reflect.MakeSlice(dst.Type(), 1, 1)
		if assign(list.Index(0), st.value) {
			dst.Set(list)
			return nil
		}
	}
	return r.invalidUpdate("%s %q: a %T does not fit field %s (%s)", st.kind, st.path, st.value, st.top.goName, st.top.typ)
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
		return r.invalidUpdate("Add %q: needs a number or a set, got %s (a slice field needs a `dynamodbav:\",stringset\"`, \",numberset\" or \",binaryset\" option to be a set)", st.path, avKind(st.av))
	case updateDeleteFromSet:
		switch st.av.(type) {
		case *types.AttributeValueMemberSS, *types.AttributeValueMemberNS, *types.AttributeValueMemberBS:
			return nil
		}
		return r.invalidUpdate("DeleteFromSet %q: needs a set, got %s (a slice field needs a `dynamodbav:\",stringset\"`, \",numberset\" or \",binaryset\" option to be a set)", st.path, avKind(st.av))
	case updateAppend:
		if _, ok := st.av.(*types.AttributeValueMemberL); !ok {
			return r.invalidUpdate("Append %q: needs a list, got %s", st.path, avKind(st.av))
		}
	}
	return nil
}

func (r *Repo[T]) invalidUpdate(format string, args ...any) error {
	return fmt.Errorf("repo %s: update: %w: %w", r.table, ErrInvalidUpdate, fmt.Errorf(format, args...))
}

func avKind(av types.AttributeValue) string {
	switch av.(type) {
	case *types.AttributeValueMemberS:
		return "a string"
	case *types.AttributeValueMemberN:
		return "a number"
	case *types.AttributeValueMemberB:
		return "binary"
	case *types.AttributeValueMemberBOOL:
		return "a boolean"
	case *types.AttributeValueMemberNULL:
		return "null"
	case *types.AttributeValueMemberL:
		return "a list"
	case *types.AttributeValueMemberM:
		return "a map"
	case *types.AttributeValueMemberSS, *types.AttributeValueMemberNS, *types.AttributeValueMemberBS:
		return "a set"
	}
	return fmt.Sprintf("%T", av)
}

// topName returns the first attribute name of a document path and whether
// the path goes deeper.
func topName(path string) (string, bool) {
	if i := strings.IndexAny(path, ".["); i >= 0 {
		return path[:i], true
	}
	return path, false
}

// pathsOverlap reports whether a and b are the same path or one lies inside
// the other, which DynamoDB refuses in one update expression.
func pathsOverlap(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	return a == b || (strings.HasPrefix(b, a) && (b[len(a)] == '.' || b[len(a)] == '['))
}

var fieldsCache sync.Map // reflect.Type -> map[string]attrField

// fieldsByName returns the attributes of struct type t by name.
func fieldsByName(t reflect.Type) map[string]attrField {
	if m, ok := fieldsCache.Load(t); ok {
		return m.(map[string]attrField)
	}
	m := map[string]attrField{}
	for _, f := range attrFields(t) {
		m[f.name] = f
	}
	fieldsCache.Store(t, m)
	return m
}

// fieldForWrite returns the settable field at index, allocating nil
// embedded struct pointers on the way.
func fieldForWrite(v reflect.Value, index []int) (reflect.Value, error) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				if !v.CanSet() {
					return reflect.Value{}, fmt.Errorf("cannot reach the field through an unexported embedded pointer")
				}
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, nil
}

// assign stores value in dst, converting where no meaning is lost: to and
// from a pointer, into a field.Encrypted (as a new value, sealed before the
// write), between number types when the number fits, between string types.
func assign(dst reflect.Value, value any) bool {
	if value == nil {
		dst.SetZero()
		return true
	}
	return assignValue(dst, reflect.ValueOf(value))
}

func assignValue(dst, v reflect.Value) bool {
	dt := dst.Type()
	switch {
	case v.Type().AssignableTo(dt):
		dst.Set(v)
		return true
	case isCell(dt):
		set := dst.Addr().MethodByName("Set")
		if !set.IsValid() || set.Type().NumIn() != 1 {
			return false
		}
		plain := reflect.New(set.Type().In(0)).Elem()
		if !assignValue(plain, v) {
			return false
		}
		set.Call([]reflect.Value{plain})
		return true
	case dt.Kind() == reflect.Pointer:
		p := reflect.New(dt.Elem())
		if !assignValue(p.Elem(), v) {
			return false
		}
		dst.Set(p)
		return true
	case v.Kind() == reflect.String && dt.Kind() == reflect.String:
		dst.SetString(v.String())
		return true
	case v.Kind() == reflect.Pointer && !v.IsNil():
		return assignValue(dst, v.Elem())
	}
	return assignNumber(dst, v)
}

func assignNumber(dst, v reflect.Value) bool {
	switch {
	case v.CanInt():
		n := v.Int()
		switch {
		case dst.CanInt() && !dst.OverflowInt(n):
			dst.SetInt(n)
		case dst.CanUint() && n >= 0 && !dst.OverflowUint(uint64(n)):
			dst.SetUint(uint64(n))
		case dst.CanFloat() && !dst.OverflowFloat(float64(n)) && int64(float64(n)) == n:
			dst.SetFloat(float64(n))
		default:
			return false
		}
	case v.CanUint():
		n := v.Uint()
		switch {
		case dst.CanInt() && n <= math.MaxInt64 && !dst.OverflowInt(int64(n)):
			dst.SetInt(int64(n))
		case dst.CanUint() && !dst.OverflowUint(n):
			dst.SetUint(n)
		case dst.CanFloat() && uint64(float64(n)) == n:
			dst.SetFloat(float64(n))
		default:
			return false
		}
	case v.CanFloat():
		f := v.Float()
		switch {
		case dst.CanFloat() && !dst.OverflowFloat(f):
			dst.SetFloat(f)
		case dst.CanInt() && f == math.Trunc(f) && f >= math.MinInt64 && f < math.MaxInt64 && !dst.OverflowInt(int64(f)):
			dst.SetInt(int64(f))
		case dst.CanUint() && f == math.Trunc(f) && f >= 0 && f < math.MaxUint64 && !dst.OverflowUint(uint64(f)):
			dst.SetUint(uint64(f))
		default:
			return false
		}
	default:
		return false
	}
	return true
}
