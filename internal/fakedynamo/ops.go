package fakedynamo

import (
	"encoding/json"
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

// queryInput is a Query request as sent, before any of it is checked.
type queryInput struct {
	table, cond, proj, sel string
	names                  map[string]string
	values                 map[string][]byte
	start                  *item
	limit                  int64
	forward                bool
}

func (q *queryInput) member(r *reader, m string) *apiError {
	switch m {
	case "TableName":
		q.table = r.str()
	case "KeyConditionExpression":
		q.cond = r.str()
	case "ProjectionExpression":
		q.proj = r.str()
	case "ExpressionAttributeNames":
		q.names = readNames(r)
	case "ExpressionAttributeValues":
		q.values = readValues(r)
	case "ExclusiveStartKey":
		q.start = readItem(r, false)
	case "Limit":
		if q.limit = r.integer(); q.limit < 1 {
			return validation("Limit must be at least 1")
		}
	case "ScanIndexForward":
		q.forward = r.boolean()
	case "Select":
		q.sel = r.str()
	case "IndexName", "FilterExpression", "KeyConditions", "QueryFilter", "ConditionalOperator", "AttributesToGet":
		return unsupported(r, m)
	default: // ConsistentRead, ReturnConsumedCapacity
		r.skip()
	}
	return nil
}

func (t *Transport) query(body []byte) ([]byte, *apiError) {
	q := queryInput{forward: true}
	if err := parse(body, q.member); err != nil {
		return nil, err
	}
	attrs, conds, err := q.expressions()
	if err != nil {
		return nil, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	tb, err := t.table(q.table)
	if err != nil {
		return nil, err
	}
	hash, rng, err := tb.keyCondition(conds)
	if err != nil {
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
	got, size, last := readPage(items, i, step, rng, q.limit, t.pageBytes())
	return tb.appendQueryReply(got, size, last, attrs, q.sel == "COUNT"), nil
}

// expressions checks the request's expressions and resolves its projection
// and key condition. The checks run in a fixed order, which decides the
// error a request with several faults gets, and none needs the table, so
// they run before the lock is taken.
func (q *queryInput) expressions() ([]string, []keyCond, *apiError) {
	switch q.sel {
	case "", "ALL_ATTRIBUTES", "SPECIFIC_ATTRIBUTES", "COUNT":
	default:
		return nil, nil, validation("fakedynamo: Select " + q.sel + " is not supported")
	}
	if q.cond == "" {
		return nil, nil, validation("Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.")
	}
	usedNames, usedValues := map[string]bool{}, map[string]bool{}
	attrs, err := projection(q.proj, q.names, usedNames)
	if err != nil {
		return nil, nil, err
	}
	conds, err := parseKeyCondition(q.cond, q.names, q.values, usedNames, usedValues)
	if err != nil {
		return nil, nil, err
	}
	if err := checkNamesUsed(q.names, usedNames); err != nil {
		return nil, nil, err
	}
	if err := checkValuesUsed(q.values, usedValues); err != nil {
		return nil, nil, err
	}
	return attrs, conds, nil
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

// readPage reads the items of a Query response: from index i on, in steps
// of step, the items that match rng, until limit items (if limit > 0) or
// pageBytes bytes have been read. size is the items' JSON bytes; last, if
// set, is the item to report as LastEvaluatedKey. got is a result of its
// own, not part of a struct, so the compiler can start it on the stack.
func readPage(items []*item, i, step int, rng *rangeCond, limit int64, pageBytes int) (got []*item, size int, last *item) {
	for ; i >= 0 && i < len(items); i += step {
		it := items[i]
		if rng != nil && !rng.match(it.rng) {
			continue
		}
		got = append(got, it)
		size += len(it.raw)
		if limit > 0 && int64(len(got)) == limit {
			// DynamoDB reports a page cut by Limit as unfinished even when
			// no item follows, so the client asks once more.
			last = it
			break
		}
		if size >= pageBytes {
			// A page cut by size is unfinished only if an item follows,
			// though that item may fail rng.
			if more := i + step; more >= 0 && more < len(items) {
				last = it
			}
			break
		}
	}
	return got, size, last
}

// appendQueryReply returns the Query response for readPage's results;
// count (Select COUNT) leaves the items out of it.
func (tb *table) appendQueryReply(got []*item, size int, last *item, attrs []string, count bool) []byte {
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
	out = strconv.AppendInt(out, int64(n), 10)
	if last != nil {
		out = append(out, ",\"LastEvaluatedKey\":"...)
		out = tb.appendKey(out, last)
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

func (t *Transport) createTable(body []byte) ([]byte, *apiError) {
	var in struct {
		TableName            string
		KeySchema            []struct{ AttributeName, KeyType string }
		AttributeDefinitions []struct{ AttributeName, AttributeType string }
		GlobalSecondaryIndexes,
		LocalSecondaryIndexes []json.RawMessage
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, &apiError{"SerializationException", err.Error(), nil}
	}
	if len(in.GlobalSecondaryIndexes)+len(in.LocalSecondaryIndexes) > 0 {
		return nil, validation("fakedynamo: secondary indexes are not supported")
	}
	types := map[string]string{}
	for _, d := range in.AttributeDefinitions {
		types[d.AttributeName] = d.AttributeType
	}
	var keys []KeyAttribute
	for i, k := range in.KeySchema {
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
	if len(in.AttributeDefinitions) != len(keys) {
		return nil, validation("One or more parameter values were invalid: Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.addTableLocked(in.TableName, keys); err != nil {
		return nil, err
	}
	return marshalReply(map[string]any{"TableDescription": t.tables[in.TableName].describe("ACTIVE")})
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
