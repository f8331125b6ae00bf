package fakedynamo

import (
	"slices"
	"strconv"
	"strings"
)

// updateInput is an UpdateItem request as sent, before any of it is
// checked.
type updateInput struct {
	table, update, cond, ret, retFail, capacity, metrics string
	key                                                  *item
	names                                                map[string]string
	values                                               map[string][]byte
}

// member returns the reader of the request's members.
func (u *updateInput) member() func(*reader, string) *apiError {
	strs := map[string]*string{
		"TableName": &u.table, "UpdateExpression": &u.update, "ConditionExpression": &u.cond,
		"ReturnValues": &u.ret, "ReturnValuesOnConditionCheckFailure": &u.retFail,
		"ReturnConsumedCapacity": &u.capacity, "ReturnItemCollectionMetrics": &u.metrics,
	}
	return func(r *reader, m string) *apiError {
		if f, ok := strs[m]; ok {
			*f = r.str()
			return nil
		}
		switch m {
		case "Key":
			u.key = readItem(r, false)
		case "ExpressionAttributeNames":
			u.names = readNames(r)
		case "ExpressionAttributeValues":
			u.values = readValues(r)
		case "AttributeUpdates", "Expected", "ConditionalOperator":
			return unsupported(r, m)
		default:
			r.skip()
		}
		return nil
	}
}

// checkOptions refuses the options of the request that are not
// implemented or not valid.
func (u *updateInput) checkOptions() *apiError {
	for _, o := range []struct {
		name, value string
		ok          []string
	}{
		{"ReturnValues", u.ret, []string{"", "NONE"}},
		{"ReturnConsumedCapacity", u.capacity, []string{"", "NONE", "TOTAL"}},
		{"ReturnValuesOnConditionCheckFailure", u.retFail, []string{"", "NONE", "ALL_OLD"}},
		{"ReturnItemCollectionMetrics", u.metrics, []string{"", "NONE"}},
	} {
		if !slices.Contains(o.ok, o.value) {
			return validation("fakedynamo: " + o.name + " " + o.value + " is not supported for UpdateItem (" + strings.Join(o.ok[1:], ", ") + ")")
		}
	}
	return nil
}

// action is one action of an UpdateExpression: SET path = value, or ADD
// path value.
type action struct {
	path  docPath
	value []byte
	add   bool
}

// expressions parses and checks the request's expressions, which needs
// no table.
func (u *updateInput) expressions() ([]action, []condition, *apiError) {
	usedNames, usedValues := map[string]bool{}, map[string]bool{}
	parser := func(kind, expr string) *exprParser {
		return &exprParser{kind: kind, toks: tokenize(expr), names: u.names, values: u.values, usedNames: usedNames, usedValues: usedValues}
	}
	p := parser("UpdateExpression", u.update)
	acts := p.actions()
	if p.err != nil {
		return nil, nil, p.err
	}
	var conds []condition
	if u.cond != "" {
		p = parser("ConditionExpression", u.cond)
		if conds = p.conditions(); p.err != nil {
			return nil, nil, p.err
		}
	}
	if err := checkNamesUsed(u.names, usedNames); err != nil {
		return nil, nil, err
	}
	if err := checkValuesUsed(u.values, usedValues); err != nil {
		return nil, nil, err
	}
	return acts, conds, checkActions(acts)
}

// actions reads an UpdateExpression: SET and ADD clauses, each once, in
// either order.
func (p *exprParser) actions() []action {
	var acts []action
	seen := map[string]bool{}
	for p.err == nil && p.peek() != "" {
		kw := strings.ToUpper(p.next())
		switch {
		case kw != "SET" && kw != "ADD":
			p.unsupported(strconv.Quote(kw) + " (SET path = :value and ADD name :number only)")
		case seen[kw]:
			p.fail(validation("Invalid UpdateExpression: The \"" + kw + "\" section can only be used once in an update expression;"))
		}
		seen[kw] = true
		acts = p.clause(acts, kw == "ADD")
	}
	return acts
}

// clause reads the comma-separated actions of a SET or ADD clause.
func (p *exprParser) clause(acts []action, add bool) []action {
	for p.err == nil {
		a := action{add: add, path: p.path()}
		if !add {
			p.want("=")
		}
		a.value = p.value()
		acts = append(acts, a)
		if p.peek() != "," {
			break
		}
		p.i++
	}
	return acts
}

// checkActions refuses actions on overlapping paths, and ADDs other than
// of a number to a top-level attribute.
func checkActions(acts []action) *apiError {
	for i, a := range acts {
		for _, b := range acts[i+1:] {
			if a.path.overlaps(b.path) {
				return validation("Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: " + a.path.String() + ", path two: " + b.path.String())
			}
		}
		if err := checkAdd(a); err != nil {
			return err
		}
	}
	return nil
}

func checkAdd(a action) *apiError {
	if !a.add {
		return nil
	}
	if len(a.path) > 1 {
		return validation("fakedynamo: ADD of a nested attribute " + a.path.String() + " is not supported in UpdateExpression")
	}
	typ, text, ok := scalar(a.value)
	if !ok || typ != "N" {
		return validation("fakedynamo: ADD of a value other than a number is not supported in UpdateExpression")
	}
	if _, ok := parseDecimal(text); !ok {
		return validation("A value provided cannot be converted into a number")
	}
	return nil
}

// readUpdate reads an UpdateItem request and checks what needs no table.
func readUpdate(body []byte) (*updateInput, []action, []condition, *apiError) {
	u := &updateInput{}
	if err := parse(body, u.member()); err != nil {
		return nil, nil, nil, err
	}
	if err := u.checkOptions(); err != nil {
		return nil, nil, nil, err
	}
	acts, conds, err := u.expressions()
	return u, acts, conds, err
}

func (t *Transport) updateItem(body []byte) ([]byte, *apiError) {
	u, acts, conds, err := readUpdate(body)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	tb, err := t.table(u.table)
	if err != nil {
		return nil, err
	}
	if err := tb.checkUpdateKey(u.key, acts); err != nil {
		return nil, err
	}
	old := tb.get(u.key)
	if err := u.check(conds, old); err != nil {
		return nil, err
	}
	it, err := tb.updated(old, u.key, acts)
	if err != nil {
		return nil, err
	}
	tb.put(it)
	return u.reply(tb, max(len(it.raw), oldSize(old))), nil
}

// checkUpdateKey checks the request's key, and that no action changes a
// key attribute.
func (tb *table) checkUpdateKey(key *item, acts []action) *apiError {
	if key == nil {
		return validation("Key is required")
	}
	if err := tb.setKeys(key, true); err != nil {
		return err
	}
	for _, a := range acts {
		for _, k := range tb.keys {
			if a.path[0].name == k.Name {
				return validation("One or more parameter values were invalid: Cannot update attribute " + k.Name + ". This attribute is part of the key")
			}
		}
	}
	return nil
}

// check evaluates the conditions against old, the item before the update
// (nil if none).
func (u *updateInput) check(conds []condition, old *item) *apiError {
	for _, c := range conds {
		if c.holds(old) {
			continue
		}
		err := &apiError{"ConditionalCheckFailedException", "The conditional request failed", nil}
		if u.retFail == "ALL_OLD" && old != nil {
			err.item = old.raw
		}
		return err
	}
	return nil
}

func oldSize(old *item) int {
	if old == nil {
		return 0
	}
	return len(old.raw)
}

// reply is the UpdateItem response; size is the larger of the item's
// sizes before and after, which DynamoDB charges for.
func (u *updateInput) reply(tb *table, size int) []byte {
	if u.capacity != "TOTAL" {
		return []byte("{}")
	}
	out := appendJSONString([]byte(`{"ConsumedCapacity":{"TableName":`), tb.name)
	out = strconv.AppendInt(append(out, `,"CapacityUnits":`...), int64(max(1, (size+1023)/1024)), 10)
	return append(out, "}}"...)
}

// updated returns the item acts make of old, or of key if old is nil.
// Actions are applied in path order, so that indexes past a list's end
// append in their order, as DynamoDB does.
func (tb *table) updated(old, key *item, acts []action) (*item, *apiError) {
	src := old
	if src == nil {
		src = key
	}
	d := newDraft(src)
	slices.SortStableFunc(acts, func(a, b action) int { return comparePaths(a.path, b.path) })
	for _, a := range acts {
		if err := d.apply(a); err != nil {
			return nil, err
		}
	}
	it := readItem(&reader{b: d.appendTo(nil)}, false)
	if it == nil {
		return nil, &apiError{"InternalServerError", "fakedynamo: an updated item does not read back", nil}
	}
	return it, tb.setKeys(it, false)
}

// draft is an item being updated: its top-level attributes, each as sent
// or, once a nested path of it changes, decoded.
type draft struct {
	names []string
	raws  [][]byte
	nodes []*node
}

func newDraft(it *item) *draft {
	d := &draft{}
	for _, a := range it.attrs {
		d.names = append(d.names, string(a.name))
		d.raws = append(d.raws, a.value)
		d.nodes = append(d.nodes, nil)
	}
	return d
}

// node returns the decoded value of attribute i.
func (d *draft) node(i int) *node {
	if d.nodes[i] == nil {
		d.nodes[i] = parseNode(d.raws[i])
	}
	return d.nodes[i]
}

// setTop sets a top-level attribute.
func (d *draft) setTop(name string, raw []byte) {
	if i := slices.Index(d.names, name); i >= 0 {
		d.raws[i], d.nodes[i] = raw, nil
		return
	}
	d.names, d.raws, d.nodes = append(d.names, name), append(d.raws, raw), append(d.nodes, nil)
}

func (d *draft) apply(a action) *apiError {
	switch {
	case a.add:
		return d.add(a.path[0].name, a.value)
	case len(a.path) == 1:
		d.setTop(a.path[0].name, a.value)
		return nil
	}
	return d.setNested(a.path, parseNode(a.value))
}

func invalidPath() *apiError {
	return validation("The document path provided in the update expression is invalid for update")
}

// setNested sets the value at a path of two steps or more, whose parent
// must exist and be a map (for a name) or list (for an index).
func (d *draft) setNested(p docPath, v *node) *apiError {
	i := slices.Index(d.names, p[0].name)
	if i < 0 {
		return invalidPath()
	}
	n := d.node(i)
	for _, e := range p[1 : len(p)-1] {
		if n = n.child(e); n == nil {
			return invalidPath()
		}
	}
	if !n.put(p[len(p)-1], v) {
		return invalidPath()
	}
	return nil
}

// add adds the number v to attribute name, which is 0 if missing.
func (d *draft) add(name string, v []byte) *apiError {
	_, text, _ := scalar(v)
	sum, _ := parseDecimal(text) // checked by checkAdd
	if i := slices.Index(d.names, name); i >= 0 {
		cur := d.node(i)
		if cur.typ != "N" {
			return validation("An operand in the update expression has an incorrect data type")
		}
		n, ok := parseDecimal(cur.text[0])
		if !ok {
			return validation("fakedynamo: the stored number " + cur.text[0] + " is not valid")
		}
		sum = n.add(sum)
	}
	if err := sum.storable(); err != nil {
		return err
	}
	d.setTop(name, []byte(`{"N":"`+sum.String()+`"}`))
	return nil
}

// appendTo appends the item as a JSON object.
func (d *draft) appendTo(dst []byte) []byte {
	dst = append(dst, '{')
	for i, name := range d.names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(appendJSONString(dst, name), ':')
		if d.nodes[i] != nil {
			dst = d.nodes[i].appendTo(dst)
		} else {
			dst = append(dst, d.raws[i]...)
		}
	}
	return append(dst, '}')
}
