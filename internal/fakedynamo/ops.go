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
		return &apiError{"SerializationException", "fakedynamo: " + r.err.Error()}
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

func (t *Transport) query(body []byte) ([]byte, *apiError) {
	var name, cond, proj, sel string
	var names map[string]string
	var values map[string][]byte
	var start *item
	var limit int64
	forward := true
	err := parse(body, func(r *reader, m string) *apiError {
		switch m {
		case "TableName":
			name = r.str()
		case "KeyConditionExpression":
			cond = r.str()
		case "ProjectionExpression":
			proj = r.str()
		case "ExpressionAttributeNames":
			names = readNames(r)
		case "ExpressionAttributeValues":
			values = readValues(r)
		case "ExclusiveStartKey":
			start = readItem(r, false)
		case "Limit":
			if limit = r.integer(); limit < 1 {
				return validation("Limit must be at least 1")
			}
		case "ScanIndexForward":
			forward = r.boolean()
		case "Select":
			sel = r.str()
		case "IndexName", "FilterExpression", "KeyConditions", "QueryFilter", "ConditionalOperator", "AttributesToGet":
			return unsupported(r, m)
		default: // ConsistentRead, ReturnConsumedCapacity
			r.skip()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch sel {
	case "", "ALL_ATTRIBUTES", "SPECIFIC_ATTRIBUTES", "COUNT":
	default:
		return nil, validation("fakedynamo: Select " + sel + " is not supported")
	}
	if cond == "" {
		return nil, validation("Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.")
	}
	usedNames, usedValues := map[string]bool{}, map[string]bool{}
	attrs, err := projection(proj, names, usedNames)
	if err != nil {
		return nil, err
	}
	conds, err := parseKeyCondition(cond, names, values, usedNames, usedValues)
	if err != nil {
		return nil, err
	}
	if err := checkNamesUsed(names, usedNames); err != nil {
		return nil, err
	}
	for k := range values {
		if !usedValues[k] {
			return nil, validation("Value provided in ExpressionAttributeValues unused in expressions: keys: {" + k + "}")
		}
	}

	t.mu.RLock()
	defer t.mu.RUnlock()
	tb, err := t.table(name)
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
	// Candidates in order, after the start key.
	i, step := 0, 1
	if !forward {
		i, step = len(items)-1, -1
	}
	if start != nil {
		if err := tb.setKeys(start, true); err != nil {
			return nil, validation("The provided starting key is invalid: " + err.msg)
		}
		if start.hash.id != hash.id {
			return nil, validation("The provided starting key is invalid: The provided key element does not match the schema")
		}
		if len(tb.keys) == 1 {
			i = len(items) // no item follows the only one
			if !forward {
				i = -1
			}
		} else {
			for ; i >= 0 && i < len(items); i += step {
				if c := compareKey(items[i].rng, start.rng); c*step > 0 {
					break
				}
			}
		}
	}
	pageBytes := t.PageBytes
	if pageBytes <= 0 {
		pageBytes = 1 << 20
	}
	var got []*item
	size := 0
	var last *item
	for ; i >= 0 && i < len(items); i += step {
		it := items[i]
		if rng != nil && !rng.match(it.rng) {
			continue
		}
		got = append(got, it)
		size += len(it.raw)
		if limit > 0 && int64(len(got)) == limit {
			last = it
			break
		}
		if size >= pageBytes {
			if more := i + step; more >= 0 && more < len(items) {
				last = it
			}
			break
		}
	}
	n := len(got)
	out := make([]byte, 0, size+len(got)+256)
	out = append(out, `{"Items":[`...)
	if sel != "COUNT" {
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
	return append(out, '}'), nil
}

// batchErr keeps the first error found inside nested readers.
type batchErr struct{ err *apiError }

func (b *batchErr) set(err *apiError) {
	if b.err == nil {
		b.err = err
	}
}

func (t *Transport) batchWriteItem(body []byte) ([]byte, *apiError) {
	type write struct {
		table    string
		put, del *item
	}
	var writes []write
	var be batchErr
	err := parse(body, func(r *reader, m string) *apiError {
		if m != "RequestItems" {
			r.skip() // ReturnConsumedCapacity, ReturnItemCollectionMetrics
			return nil
		}
		r.object(func(table string) {
			r.array(func() {
				w := write{table: table}
				n := 0
				r.object(func(kind string) {
					n++
					switch kind {
					case "PutRequest":
						r.object(func(f string) {
							if f == "Item" {
								w.put = readItem(r, true)
							} else {
								r.skip()
							}
						})
					case "DeleteRequest":
						r.object(func(f string) {
							if f == "Key" {
								w.del = readItem(r, false)
							} else {
								r.skip()
							}
						})
					default:
						r.skip()
						be.set(validation("fakedynamo: unknown write request " + kind))
					}
				})
				if n != 1 || w.put == nil && w.del == nil {
					be.set(validation("Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes"))
				}
				writes = append(writes, w)
			})
		})
		return nil
	})
	if err == nil {
		err = be.err
	}
	if err != nil {
		return nil, err
	}
	switch {
	case len(writes) == 0:
		return nil, validation("1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1")
	case len(writes) > 25:
		return nil, validation("Too many items requested for the BatchWriteItem call")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
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
	for i, w := range writes {
		if w.put != nil {
			tbs[i].put(w.put)
		} else {
			tbs[i].delete(w.del)
		}
	}
	return []byte(`{"UnprocessedItems":{}}`), nil
}

func (t *Transport) batchGetItem(body []byte) ([]byte, *apiError) {
	type request struct {
		table string
		keys  []*item
		proj  string
		names map[string]string
	}
	var reqs []*request
	var be batchErr
	err := parse(body, func(r *reader, m string) *apiError {
		if m != "RequestItems" {
			r.skip() // ReturnConsumedCapacity
			return nil
		}
		r.object(func(table string) {
			q := &request{table: table}
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
			reqs = append(reqs, q)
		})
		return nil
	})
	if err == nil {
		err = be.err
	}
	if err != nil {
		return nil, err
	}
	total := 0
	for _, q := range reqs {
		total += len(q.keys)
	}
	switch {
	case total == 0:
		return nil, validation("1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1")
	case total > 100:
		return nil, validation("Too many items requested for the BatchGetItem call")
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := []byte(`{"Responses":{`)
	for qi, q := range reqs {
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
		if qi > 0 {
			out = append(out, ',')
		}
		out = append(appendJSONString(out, q.table), ":["...)
		seen := map[string]bool{}
		n := 0
		for _, k := range q.keys {
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
		out = append(out, ']')
	}
	return append(out, `},"UnprocessedKeys":{}}`...), nil
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
		return nil, &apiError{"SerializationException", err.Error()}
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
		return "", &apiError{"SerializationException", err.Error()}
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
		return nil, &apiError{"InternalServerError", err.Error()}
	}
	return b, nil
}
