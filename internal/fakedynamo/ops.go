package fakedynamo

import (
	"encoding/json"
	"slices"
	"strconv"
)

// parse reads a request object, calling member for each of its members
// with the reader at the member's value; member must consume the value.
func parse(body []byte, member func(r *reader, name string) *apiError) *apiError {
	r := &reader{b: body}
	var err *apiError
	r.object(func(name string) {
		if err != nil {
			r.skip()
			return
		}
		err = member(r, name)
	})
	r.end()
	if r.err != nil {
		return &apiError{"SerializationException", "fakedynamo: " + r.err.Error(), nil}
	}
	return err
}

func unsupported(r *reader, name string) *apiError {
	r.skip()
	return validation("fakedynamo: " + name + " is not supported")
}

func readNames(r *reader) map[string]string {
	m := map[string]string{}
	r.object(func(k string) { m[k] = r.str() })
	return m
}

func readValues(r *reader) map[string][]byte {
	m := map[string][]byte{}
	r.object(func(k string) { m[k] = r.attrValue() })
	return m
}

func checkReturnValues(v string) *apiError {
	switch v {
	case "", "NONE", "ALL_OLD":
		return nil
	}
	return validation("fakedynamo: ReturnValues " + v + " is not supported (NONE or ALL_OLD)")
}

func attributesReply(old *item, ret string) []byte {
	if ret == "ALL_OLD" && old != nil {
		return append(append([]byte(`{"Attributes":`), old.raw...), '}')
	}
	return []byte("{}")
}

func (t *Transport) putItem(body []byte) ([]byte, *apiError) {
	var name, ret string
	var it *item
	err := parse(body, func(r *reader, m string) *apiError {
		switch m {
		case "TableName":
			name = r.str()
		case "Item":
			it = readItem(r, true)
		case "ReturnValues":
			ret = r.str()
		case "ConditionExpression", "Expected", "ConditionalOperator", "ExpressionAttributeNames", "ExpressionAttributeValues":
			return unsupported(r, m)
		default:
			r.skip()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := checkReturnValues(ret); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	tb, err := t.table(name)
	if err != nil {
		return nil, err
	}
	if it == nil {
		return nil, validation("Item is required")
	}
	if err := tb.setKeys(it, false); err != nil {
		return nil, err
	}
	return attributesReply(tb.put(it), ret), nil
}

func (t *Transport) deleteItem(body []byte) ([]byte, *apiError) {
	var name, ret string
	var key *item
	err := parse(body, func(r *reader, m string) *apiError {
		switch m {
		case "TableName":
			name = r.str()
		case "Key":
			key = readItem(r, false)
		case "ReturnValues":
			ret = r.str()
		case "ConditionExpression", "Expected", "ConditionalOperator", "ExpressionAttributeNames", "ExpressionAttributeValues":
			return unsupported(r, m)
		default:
			r.skip()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := checkReturnValues(ret); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	tb, err := t.table(name)
	if err != nil {
		return nil, err
	}
	if key == nil {
		return nil, validation("Key is required")
	}
	if err := tb.setKeys(key, true); err != nil {
		return nil, err
	}
	return attributesReply(tb.delete(key), ret), nil
}

func (t *Transport) getItem(body []byte) ([]byte, *apiError) {
	var name, proj string
	var names map[string]string
	var key *item
	err := parse(body, func(r *reader, m string) *apiError {
		switch m {
		case "TableName":
			name = r.str()
		case "Key":
			key = readItem(r, false)
		case "ProjectionExpression":
			proj = r.str()
		case "ExpressionAttributeNames":
			names = readNames(r)
		case "AttributesToGet":
			return unsupported(r, m)
		default: // ConsistentRead: every read is consistent here
			r.skip()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	attrs, err := projection(proj, names, used)
	if err != nil {
		return nil, err
	}
	if err := checkNamesUsed(names, used); err != nil {
		return nil, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	tb, err := t.table(name)
	if err != nil {
		return nil, err
	}
	if key == nil {
		return nil, validation("Key is required")
	}
	if err := tb.setKeys(key, true); err != nil {
		return nil, err
	}
	it := tb.get(key)
	if it == nil {
		return []byte("{}"), nil
	}
	out := make([]byte, 0, len(it.raw)+16)
	out = append(out, `{"Item":`...)
	return append(appendProjected(out, it, attrs), '}'), nil
}

// queryInput is a Query request as sent, before any of it is checked,
// and then its expressions resolved.
type queryInput struct {
	exprInput
	table, index, cond, proj, sel string
	start                         *item
	limit                         int64
	forward, consistent           bool

	attrs  []string // the ProjectionExpression's names, nil for all
	conds  []keyCond
	filter conditions
}

func (q *queryInput) member(r *reader, m string) *apiError {
	if q.valueMember(r, m) || q.exprMember(r, m) {
		return nil
	}
	switch m {
	case "ExclusiveStartKey":
		q.start = readItem(r, false)
	case "Limit":
		return q.readLimit(r)
	case "KeyConditions", "QueryFilter", "ConditionalOperator", "AttributesToGet":
		return unsupported(r, m)
	default: // ReturnConsumedCapacity
		r.skip()
	}
	return nil
}

// valueMember reads the request's member m if it is a string or a boolean,
// reporting whether it is.
func (q *queryInput) valueMember(r *reader, m string) bool {
	strs := [...]struct {
		name string
		dst  *string
	}{{"TableName", &q.table}, {"IndexName", &q.index}, {"KeyConditionExpression", &q.cond}, {"ProjectionExpression", &q.proj}, {"Select", &q.sel}}
	for _, f := range strs {
		if f.name == m {
			*f.dst = r.str()
			return true
		}
	}
	switch m {
	case "ScanIndexForward":
		q.forward = r.boolean()
	case "ConsistentRead": // every read of the table is consistent here
		q.consistent = r.boolean()
	default:
		return false
	}
	return true
}

func (q *queryInput) readLimit(r *reader) *apiError {
	if q.limit = r.integer(); q.limit < 1 {
		return validation("Limit must be at least 1")
	}
	return nil
}

// exprInput is the members for expressions that a Query and a Scan share.
type exprInput struct {
	filterExpr string
	names      map[string]string
	values     map[string][]byte
}

// exprMember reads the request's member m if it is one of exprInput's,
// reporting whether it is.
func (e *exprInput) exprMember(r *reader, m string) bool {
	switch m {
	case "FilterExpression":
		e.filterExpr = r.str()
	case "ExpressionAttributeNames":
		e.names = readNames(r)
	case "ExpressionAttributeValues":
		e.values = readValues(r)
	default:
		return false
	}
	return true
}

// parseFilter parses the FilterExpression, if any, in the language of
// UpdateItem's conditions, marking the names and values it uses.
func (e *exprInput) parseFilter(usedNames, usedValues map[string]bool) (conditions, *apiError) {
	if e.filterExpr == "" {
		return nil, nil
	}
	p := &exprParser{kind: "FilterExpression", toks: tokenize(e.filterExpr), names: e.names, values: e.values, usedNames: usedNames, usedValues: usedValues}
	conds := p.conditions()
	if p.err != nil {
		return nil, p.err
	}
	return conds, nil
}

func (t *Transport) query(body []byte) ([]byte, *apiError) {
	q := queryInput{forward: true}
	if err := parse(body, q.member); err != nil {
		return nil, err
	}
	if err := q.expressions(); err != nil {
		return nil, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	tb, err := t.table(q.table)
	if err != nil {
		return nil, err
	}
	lim := pageLimit{limit: q.limit, bytes: t.pageBytes()}
	if q.index != "" {
		return tb.queryIndex(&q, lim)
	}
	return tb.query(&q, lim)
}

// query serves a Query of the table itself.
func (tb *table) query(q *queryInput, lim pageLimit) ([]byte, *apiError) {
	hash, rng, err := keyCondition(tb.keys, q.conds)
	if err != nil {
		return nil, err
	}
	if err := checkFilterKeys(q.filter, tb.keys); err != nil {
		return nil, err
	}
	var items []*item
	if p := tb.parts[hash.id]; p != nil {
		items = p.items
	}
	i, step, err := tb.scanStart(items, hash, q.start, q.forward)
	if err != nil {
		return nil, err
	}
	got, size, scanned, last := readPage(items, i, step, rng, q.filter, lim)
	return appendQueryReply(got, size, scanned, last, tb.keys, q.attrs, q.sel == "COUNT"), nil
}

// expressions checks the request's expressions and resolves its
// projection, key condition and filter. The checks run in a fixed order,
// which decides the error a request with several faults gets, and none
// needs the table, so they run before the lock is taken.
func (q *queryInput) expressions() *apiError {
	if err := checkSelect(q.sel, q.index != ""); err != nil {
		return err
	}
	if q.cond == "" {
		return validation("Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.")
	}
	usedNames, usedValues := map[string]bool{}, map[string]bool{}
	var err *apiError
	if q.attrs, err = projection(q.proj, q.names, usedNames); err != nil {
		return err
	}
	if q.conds, err = parseKeyCondition(q.cond, q.names, q.values, usedNames, usedValues); err != nil {
		return err
	}
	if q.filter, err = q.parseFilter(usedNames, usedValues); err != nil {
		return err
	}
	if err := checkNamesUsed(q.names, usedNames); err != nil {
		return err
	}
	return checkValuesUsed(q.values, usedValues)
}

// checkSelect refuses the Select values not implemented, and
// ALL_PROJECTED_ATTRIBUTES but of an index.
func checkSelect(sel string, ofIndex bool) *apiError {
	switch sel {
	case "", "ALL_ATTRIBUTES", "SPECIFIC_ATTRIBUTES", "COUNT":
		return nil
	case "ALL_PROJECTED_ATTRIBUTES":
		if ofIndex {
			return nil
		}
	}
	return validation("fakedynamo: Select " + sel + " is not supported")
}

// checkFilterKeys refuses a Query's filter that reads a key attribute of
// the table or index queried, as DynamoDB does: a key belongs in the key
// condition.
func checkFilterKeys(filter conditions, keys []KeyAttribute) *apiError {
	for _, name := range filter.attrNames() {
		if slices.ContainsFunc(keys, func(k KeyAttribute) bool { return k.Name == name }) {
			return validation("Filter Expression can only contain non-primary key attributes: Primary key attribute: " + name)
		}
	}
	return nil
}

func checkValuesUsed(values map[string][]byte, used map[string]bool) *apiError {
	for k := range values {
		if !used[k] {
			return validation("Value provided in ExpressionAttributeValues unused in expressions: keys: {" + k + "}")
		}
	}
	return nil
}

// scanStart returns the index of the first item of a partition's items a
// query may return, and the step to the next one. A start key resumes the
// scan after its position, whether or not its item still exists, as the
// item may have been deleted between pages.
func (tb *table) scanStart(items []*item, hash keyVal, start *item, forward bool) (int, int, *apiError) {
	i, step := 0, 1
	if !forward {
		i, step = len(items)-1, -1
	}
	if start == nil {
		return i, step, nil
	}
	if err := tb.setKeys(start, true); err != nil {
		return 0, 0, validation("The provided starting key is invalid: " + err.msg)
	}
	if start.hash.id != hash.id {
		return 0, 0, validation("The provided starting key is invalid: The provided key element does not match the schema")
	}
	if len(tb.keys) == 1 {
		// The partition holds one item at most, the start key's own, so
		// nothing follows it in either direction.
		if forward {
			return len(items), step, nil
		}
		return -1, step, nil
	}
	for ; i >= 0 && i < len(items); i += step {
		if compareKey(items[i].rng, start.rng)*step > 0 {
			break
		}
	}
	return i, step, nil
}

// pageBytes is the size at which a Query response stops.
func (t *Transport) pageBytes() int {
	if t.PageBytes <= 0 {
		return 1 << 20 // DynamoDB's page size
	}
	return t.PageBytes
}

// pageLimit is where a page of a Query or Scan stops: once limit items
// (if limit > 0) have been evaluated, or the items evaluated reach bytes,
// whether or not the filter keeps them, as DynamoDB applies the filter to
// the page read.
type pageLimit struct {
	limit int64
	bytes int
}

func (l pageLimit) full(scanned, size int) bool {
	return l.atLimit(scanned) || size >= l.bytes
}

func (l pageLimit) atLimit(scanned int) bool {
	return l.limit > 0 && int64(scanned) == l.limit
}

// last returns the item to report as LastEvaluatedKey of a full page that
// ends with it; more says whether an item follows. DynamoDB reports a page
// cut by Limit as unfinished even when no item follows, so the client asks
// once more; a page cut by size is unfinished only if an item follows,
// though in a Query that item may fail the key condition.
func (l pageLimit) last(it *item, scanned int, more bool) *item {
	if more || l.atLimit(scanned) {
		return it
	}
	return nil
}

// readPage reads the items of a Query response: from index i on, in steps
// of step, it evaluates the items that match rng, until the page is full,
// and keeps those that pass filter. scanned is the number of items
// evaluated and size their JSON bytes; last, if set, is the item to report
// as LastEvaluatedKey. got is a result of its own, not part of a struct, and
// is returned in one place only, so the compiler can start it on the stack.
func readPage(items []*item, i, step int, rng *rangeCond, filter conditions, lim pageLimit) (got []*item, size, scanned int, last *item) {
	for ; i >= 0 && i < len(items); i += step {
		it := items[i]
		if rng != nil && !rng.match(it.rng) {
			continue
		}
		scanned, size = scanned+1, size+len(it.raw)
		if filter.holds(it) {
			got = append(got, it)
		}
		if lim.full(scanned, size) {
			last = lim.last(it, scanned, inRange(items, i+step))
			break
		}
	}
	return got, size, scanned, last
}

func inRange(items []*item, i int) bool { return i >= 0 && i < len(items) }

// appendQueryReply returns the Query or Scan response for readPage's or
// scanPage's results, with a LastEvaluatedKey of the attributes keys;
// count (Select COUNT) leaves the items out of it.
func appendQueryReply(got []*item, size, scanned int, last *item, keys []KeyAttribute, attrs []string, count bool) []byte {
	n := len(got)
	out := make([]byte, 0, size+n+256)
	out = append(out, `{"Items":[`...)
	if !count {
		for j, it := range got {
			if j > 0 {
				out = append(out, ',')
			}
			out = appendProjected(out, it, attrs)
		}
	}
	out = append(out, "],\"Count\":"...)
	out = strconv.AppendInt(out, int64(n), 10)
	out = append(out, ",\"ScannedCount\":"...)
	out = strconv.AppendInt(out, int64(scanned), 10)
	if last != nil {
		out = append(out, ",\"LastEvaluatedKey\":"...)
		out = appendKey(out, last, keys)
	}
	return append(out, '}')
}

// batchErr keeps the first error found inside nested readers, whose
// callbacks cannot return one.
type batchErr struct{ err *apiError }

func (b *batchErr) set(err *apiError) {
	if b.err == nil {
		b.err = err
	}
}

// checkBatchSize refuses an empty batch or one of more than most items.
func checkBatchSize(n, most int, op string) *apiError {
	switch {
	case n == 0:
		return validation("1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1")
	case n > most:
		return validation("Too many items requested for the " + op + " call")
	}
	return nil
}

// batchWrite is one write of a BatchWriteItem; put or del is set.
type batchWrite struct {
	table    string
	put, del *item
}

func (t *Transport) batchWriteItem(body []byte) ([]byte, *apiError) {
	writes, err := readBatchWrites(body)
	if err != nil {
		return nil, err
	}
	if err := checkBatchSize(len(writes), 25, "BatchWriteItem"); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	tbs, err := t.checkBatchWrites(writes)
	if err != nil {
		return nil, err
	}
	for i, w := range writes {
		if w.put != nil {
			tbs[i].put(w.put)
		} else {
			tbs[i].delete(w.del)
		}
	}
	return []byte(`{"UnprocessedItems":{}}`), nil
}

func readBatchWrites(body []byte) ([]batchWrite, *apiError) {
	var writes []batchWrite
	var be batchErr
	err := parse(body, func(r *reader, m string) *apiError {
		if m != "RequestItems" {
			r.skip() // ReturnConsumedCapacity, ReturnItemCollectionMetrics
			return nil
		}
		r.object(func(table string) {
			r.array(func() { writes = append(writes, readBatchWrite(r, table, &be)) })
		})
		return nil
	})
	if err == nil {
		err = be.err
	}
	return writes, err
}

// readBatchWrite reads one WriteRequest of table's list. It keeps reading
// after a fault, leaving the error in be, so that a malformed body is still
// reported as such.
func readBatchWrite(r *reader, table string, be *batchErr) batchWrite {
	w := batchWrite{table: table}
	n := 0
	r.object(func(kind string) {
		n++
		switch kind {
		case "PutRequest":
			readRequestItem(r, "Item", true, &w.put)
		case "DeleteRequest":
			readRequestItem(r, "Key", false, &w.del)
		default:
			r.skip()
			be.set(validation("fakedynamo: unknown write request " + kind))
		}
	})
	if n != 1 || w.put == nil && w.del == nil {
		be.set(validation("Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes"))
	}
	return w
}

// readRequestItem reads a PutRequest or DeleteRequest object, setting *dst
// from its member want if it has one.
func readRequestItem(r *reader, want string, keep bool, dst **item) {
	r.object(func(f string) {
		if f == want {
			*dst = readItem(r, keep)
		} else {
			r.skip()
		}
	})
}

// checkBatchWrites checks every write of a batch, and returns the table of
// each, before any is applied: a batch with a bad write changes nothing.
func (t *Transport) checkBatchWrites(writes []batchWrite) ([]*table, *apiError) {
	seen := map[string]bool{}
	tbs := make([]*table, len(writes))
	for i, w := range writes {
		tb, err := t.table(w.table)
		if err != nil {
			return nil, err
		}
		tbs[i] = tb
		it, isKey := w.put, false
		if it == nil {
			it, isKey = w.del, true
		}
		if err := tb.setKeys(it, isKey); err != nil {
			return nil, err
		}
		id := tb.name + "\x00" + tb.id(it)
		if seen[id] {
			return nil, validation("Provided list of item keys contains duplicates")
		}
		seen[id] = true
	}
	return tbs, nil
}

// batchGet is one table's part of a BatchGetItem.
type batchGet struct {
	table string
	keys  []*item
	proj  string
	names map[string]string
}

func (t *Transport) batchGetItem(body []byte) ([]byte, *apiError) {
	reqs, err := readBatchGets(body)
	if err != nil {
		return nil, err
	}
	total := 0
	for _, q := range reqs {
		total += len(q.keys)
	}
	if err := checkBatchSize(total, 100, "BatchGetItem"); err != nil {
		return nil, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := []byte(`{"Responses":{`)
	for qi, q := range reqs {
		if qi > 0 {
			out = append(out, ',')
		}
		if out, err = t.appendBatchGet(out, q); err != nil {
			return nil, err
		}
	}
	return append(out, `},"UnprocessedKeys":{}}`...), nil
}

func readBatchGets(body []byte) ([]*batchGet, *apiError) {
	var reqs []*batchGet
	var be batchErr
	err := parse(body, func(r *reader, m string) *apiError {
		if m != "RequestItems" {
			r.skip() // ReturnConsumedCapacity
			return nil
		}
		r.object(func(table string) { reqs = append(reqs, readBatchGet(r, table, &be)) })
		return nil
	})
	if err == nil {
		err = be.err
	}
	return reqs, err
}

// readBatchGet reads the KeysAndAttributes of table. It keeps reading after
// a fault, leaving the error in be, so that a malformed body is still
// reported as such.
func readBatchGet(r *reader, table string, be *batchErr) *batchGet {
	q := &batchGet{table: table}
	r.object(func(f string) {
		switch f {
		case "Keys":
			r.array(func() { q.keys = append(q.keys, readItem(r, false)) })
		case "ProjectionExpression":
			q.proj = r.str()
		case "ExpressionAttributeNames":
			q.names = readNames(r)
		case "AttributesToGet":
			be.set(unsupported(r, f))
		default: // ConsistentRead
			r.skip()
		}
	})
	return q
}

// appendBatchGet appends the response member of q's table.
func (t *Transport) appendBatchGet(out []byte, q *batchGet) ([]byte, *apiError) {
	tb, err := t.table(q.table)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	attrs, err := projection(q.proj, q.names, used)
	if err != nil {
		return nil, err
	}
	if err := checkNamesUsed(q.names, used); err != nil {
		return nil, err
	}
	out = append(appendJSONString(out, q.table), ":["...)
	if out, err = tb.appendFound(out, q.keys, attrs); err != nil {
		return nil, err
	}
	return append(out, ']'), nil
}

// appendFound appends the items of keys, leaving out the keys that have
// none, as BatchGetItem does.
func (tb *table) appendFound(out []byte, keys []*item, attrs []string) ([]byte, *apiError) {
	seen := map[string]bool{}
	n := 0
	for _, k := range keys {
		if err := tb.setKeys(k, true); err != nil {
			return nil, err
		}
		id := tb.id(k)
		if seen[id] {
			return nil, validation("Provided list of item keys contains duplicates")
		}
		seen[id] = true
		if it := tb.get(k); it != nil {
			if n > 0 {
				out = append(out, ',')
			}
			out = appendProjected(out, it, attrs)
			n++
		}
	}
	return out, nil
}

// createTableInput is a CreateTable request. The members not listed here
// (BillingMode, ProvisionedThroughput, ...) are ignored.
type createTableInput struct {
	TableName              string
	KeySchema              []keySchemaElement
	AttributeDefinitions   []struct{ AttributeName, AttributeType string }
	GlobalSecondaryIndexes []indexInput
	LocalSecondaryIndexes  []json.RawMessage
}

type keySchemaElement struct{ AttributeName, KeyType string }

func (t *Transport) createTable(body []byte) ([]byte, *apiError) {
	var in createTableInput
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, &apiError{"SerializationException", err.Error(), nil}
	}
	keys, indexes, err := in.schema()
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.addTableLocked(in.TableName, keys); err != nil {
		return nil, err
	}
	tb := t.tables[in.TableName]
	tb.indexes = indexes
	return marshalReply(map[string]any{"TableDescription": tb.describe("ACTIVE")})
}

// schema checks the key schemas of the table and its indexes against the
// attribute definitions, which must define their key attributes and no
// others, and returns the table's keys and its indexes.
func (in *createTableInput) schema() ([]KeyAttribute, []*index, *apiError) {
	if len(in.LocalSecondaryIndexes) > 0 {
		return nil, nil, validation("fakedynamo: local secondary indexes are not supported")
	}
	types := map[string]string{}
	for _, d := range in.AttributeDefinitions {
		types[d.AttributeName] = d.AttributeType
	}
	keys, err := keyAttributes(in.KeySchema, types)
	if err != nil {
		return nil, nil, err
	}
	indexes, err := newIndexes(in.GlobalSecondaryIndexes, keys, types)
	if err != nil {
		return nil, nil, err
	}
	if len(in.AttributeDefinitions) != len(keyAttributesOf(keys, indexes)) {
		return nil, nil, validation("One or more parameter values were invalid: Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions")
	}
	return keys, indexes, nil
}

// keyAttributes returns the attributes of a key schema, of the types
// defined.
func keyAttributes(schema []keySchemaElement, types map[string]string) ([]KeyAttribute, *apiError) {
	var keys []KeyAttribute
	for i, k := range schema {
		want := "HASH"
		if i == 1 {
			want = "RANGE"
		}
		if k.KeyType != want {
			return nil, validation("Invalid KeySchema: the first element must be HASH and the second, if any, RANGE")
		}
		typ, ok := types[k.AttributeName]
		if !ok {
			return nil, validation("One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [" + k.AttributeName + "]")
		}
		keys = append(keys, KeyAttribute{Name: k.AttributeName, Type: typ})
	}
	return keys, nil
}

func tableNameOf(body []byte) (string, *apiError) {
	var in struct{ TableName string }
	if err := json.Unmarshal(body, &in); err != nil {
		return "", &apiError{"SerializationException", err.Error(), nil}
	}
	return in.TableName, nil
}

func (t *Transport) describeTable(body []byte) ([]byte, *apiError) {
	name, err := tableNameOf(body)
	if err != nil {
		return nil, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	tb, err := t.table(name)
	if err != nil {
		return nil, err
	}
	return marshalReply(map[string]any{"Table": tb.describe("ACTIVE")})
}

func (t *Transport) deleteTable(body []byte) ([]byte, *apiError) {
	name, err := tableNameOf(body)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	tb, err := t.table(name)
	if err != nil {
		return nil, err
	}
	delete(t.tables, name)
	return marshalReply(map[string]any{"TableDescription": tb.describe("DELETING")})
}

func marshalReply(v any) ([]byte, *apiError) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, &apiError{"InternalServerError", err.Error(), nil}
	}
	return b, nil
}
