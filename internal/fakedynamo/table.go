package fakedynamo

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

type table struct {
	name    string
	keys    []KeyAttribute // hash, then range if any
	created time.Time
	parts   map[string]*partition // by the hash key's id
	count   int
	bytes   int
	indexes []*index // global secondary indexes, as created

	// order is the partitions in scan order, or nil once a partition has
	// been added or removed; a Scan builds it again, under orderMu, as
	// scans run under the transport's read lock and writes under its
	// write lock.
	orderMu sync.Mutex
	order   []*partition
}

// partition holds the items of one hash key in range-key order.
type partition struct {
	items []*item
	id    string // the hash key's id
	h     uint64 // hashID(id), which places it in scan order and segments
}

// item is an item as sent: its JSON object, and where each attribute's
// value lies in it.
type item struct {
	raw   []byte
	attrs []attr
	hash  keyVal
	rng   keyVal
	// of is, for an item of an index, the table's item it projects; the
	// index's order falls back on that item's key.
	of *item
}

type attr struct {
	name  []byte // the decoded name; within item.raw unless it had escapes
	value []byte // raw attribute value, within item.raw
}

func (it *item) get(name string) ([]byte, bool) {
	for _, a := range it.attrs {
		if string(a.name) == name {
			return a.value, true
		}
	}
	return nil, false
}

// keyVal is a key attribute's value, comparable in DynamoDB's order.
type keyVal struct {
	typ string // "S", "N", "B"
	s   string // S: the string; B: the decoded bytes; N: canonical form
	id  string // typ and s, to find the value by
	// N only: the value as an integer when it is one that fits, else as a
	// rational.
	isInt bool
	i     int64
	n     *big.Rat
}

func compareKey(a, b keyVal) int {
	if a.typ != "N" {
		return strings.Compare(a.s, b.s)
	}
	if a.isInt && b.isInt {
		return cmp.Compare(a.i, b.i)
	}
	return a.rat().Cmp(b.rat())
}

func (k keyVal) rat() *big.Rat {
	if k.isInt {
		return new(big.Rat).SetInt64(k.i)
	}
	return k.n
}

func (t *Transport) addTableLocked(name string, keys []KeyAttribute) *apiError {
	if len(keys) < 1 || len(keys) > 2 {
		return validation("a table has a hash key and at most one range key")
	}
	if len(name) < 3 || len(name) > 255 {
		return validation("TableName must be between 3 and 255 characters long")
	}
	if err := checkKeys(keys, "a table"); err != nil {
		return err
	}
	if _, ok := t.tables[name]; ok {
		return &apiError{"ResourceInUseException", "Table already exists: " + name, nil}
	}
	t.tables[name] = &table{name: name, keys: slices.Clone(keys), created: time.Now(), parts: map[string]*partition{}}
	return nil
}

// checkKeys checks the key schema of a table or an index (what says
// which).
func checkKeys(keys []KeyAttribute, what string) *apiError {
	if len(keys) < 1 || len(keys) > 2 {
		return validation(what + " has a hash key and at most one range key")
	}
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return err
		}
	}
	if len(keys) == 2 && keys[0].Name == keys[1].Name {
		return validation("the hash and range key are the same attribute")
	}
	return nil
}

func checkKey(k KeyAttribute) *apiError {
	if k.Name == "" {
		return validation("a key attribute has no name")
	}
	if k.Type != "S" && k.Type != "N" && k.Type != "B" {
		return validation("key attribute " + k.Name + " has type " + k.Type + ", not S, N or B")
	}
	return nil
}

func (t *Transport) table(name string) (*table, *apiError) {
	if name == "" {
		return nil, validation("TableName is required")
	}
	tb, ok := t.tables[name]
	if !ok {
		return nil, &apiError{"ResourceNotFoundException", "Requested resource not found: Table: " + name + " not found", nil}
	}
	return tb, nil
}

// readItem reads an item (or key) object, copying its bytes when keep is
// set, so the item may outlive the request body.
func readItem(r *reader, keep bool) *item {
	if r.peek() != '{' {
		r.fail(errSyntax)
		return nil
	}
	start := r.i
	it := &item{attrs: make([]attr, 0, 16)}
	var at [][2]int // where each name (or -1) and value lie in r.b
	if keep {
		at = make([][2]int, 0, 16)
	}
	r.objectRaw(func(name []byte) {
		nameAt := r.nameAt
		v := r.attrValue()
		if keep {
			at = append(at, [2]int{nameAt, r.i - len(v)})
		}
		it.attrs = append(it.attrs, attr{name: name, value: v})
	})
	if r.err != nil {
		return nil
	}
	it.raw = r.b[start:r.i]
	if keep {
		// Point the attributes into the copy, where their bytes lie at the
		// same offsets; a name decoded from escapes is its own copy already.
		raw := slices.Clone(it.raw)
		for i := range it.attrs {
			a := &it.attrs[i]
			if n := at[i][0]; n >= 0 {
				a.name = raw[n-start : n-start+len(a.name)]
			}
			v := at[i][1]
			a.value = raw[v-start : v-start+len(a.value)]
		}
		it.raw = raw
	}
	return it
}

// scalar decodes an attribute value that is S, N or B.
func scalar(raw []byte) (typ, text string, ok bool) {
	r := reader{b: raw}
	members := 0
	r.objectRaw(func(tag []byte) {
		members++
		switch string(tag) {
		case "S", "N", "B":
			typ = string(tag)
			text = r.str()
		default:
			r.skip()
		}
	})
	ok = r.err == nil && members == 1 && typ != ""
	return typ, text, ok
}

func parseKeyVal(typ, text string) (keyVal, bool) {
	k := keyVal{typ: typ}
	switch typ {
	case "S":
		k.s = text
		if !utf8.ValidString(text) {
			return k, false
		}
	case "B":
		b, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			return k, false
		}
		k.s = string(b)
	case "N":
		if i, err := strconv.ParseInt(text, 10, 64); err == nil {
			k.isInt, k.i, k.s = true, i, strconv.FormatInt(i, 10)
			break
		}
		n, ok := new(big.Rat).SetString(text)
		if !ok || strings.ContainsAny(text, "/xXpP_") {
			return k, false
		}
		if n.IsInt() && n.Num().IsInt64() {
			k.isInt, k.i, k.s = true, n.Num().Int64(), n.Num().String()
			break
		}
		k.n, k.s = n, n.RatString()
	default:
		return k, false
	}
	k.id = typ + ":" + k.s
	return k, true
}

// keyOf finds the value of key attribute k in it.
func keyOf(it *item, k KeyAttribute, what string) (keyVal, *apiError) {
	raw, ok := it.get(k.Name)
	if !ok {
		return keyVal{}, validation("One or more parameter values were invalid: Missing the key " + k.Name + " in the " + what)
	}
	typ, text, ok := scalar(raw)
	if !ok || typ != k.Type {
		return keyVal{}, validation("One or more parameter values were invalid: Type mismatch for key " + k.Name + " expected: " + k.Type + " actual: " + typ)
	}
	if text == "" {
		return keyVal{}, validation("One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: " + k.Name)
	}
	v, ok := parseKeyVal(typ, text)
	if !ok {
		return keyVal{}, validation("One or more parameter values were invalid: key " + k.Name + " is not a valid " + typ)
	}
	return v, nil
}

// setKeys fills it.hash and it.rng from its attributes. A key (as opposed
// to an item) must have no other attributes; an item must have index keys
// of the indexes' types, if any.
func (tb *table) setKeys(it *item, isKey bool) *apiError {
	if !isKey {
		return tb.setItemKeys(it)
	}
	if len(it.attrs) != len(tb.keys) || tb.readKeys(it, "key") != nil {
		return validation("The provided key element does not match the schema")
	}
	return nil
}

func (tb *table) setItemKeys(it *item) *apiError {
	if err := tb.readKeys(it, "item"); err != nil {
		return err
	}
	for _, ix := range tb.indexes {
		if _, _, err := ix.keysOf(it); err != nil {
			return err
		}
	}
	return nil
}

// readKeys fills it.hash and it.rng from the attributes of it, an item or
// a key (what).
func (tb *table) readKeys(it *item, what string) *apiError {
	var err *apiError
	if it.hash, err = keyOf(it, tb.keys[0], what); err != nil || len(tb.keys) == 1 {
		return err
	}
	it.rng, err = keyOf(it, tb.keys[1], what)
	return err
}

func (tb *table) id(it *item) string {
	if len(tb.keys) == 2 {
		return it.hash.id + "\x00" + it.rng.id
	}
	return it.hash.id
}

// find returns the partition of k and the index of k's item in it.
func (tb *table) find(k *item) (*partition, int, bool) {
	p := tb.parts[k.hash.id]
	if p == nil {
		return nil, 0, false
	}
	if len(tb.keys) == 1 {
		return p, 0, len(p.items) == 1
	}
	i, ok := slices.BinarySearchFunc(p.items, k.rng, func(e *item, t keyVal) int { return compareKey(e.rng, t) })
	return p, i, ok
}

func (tb *table) get(k *item) *item {
	if p, i, ok := tb.find(k); ok {
		return p.items[i]
	}
	return nil
}

// put stores it, returning the item it replaced.
func (tb *table) put(it *item) *item {
	old := tb.store(it)
	tb.reindex(old, it)
	return old
}

func (tb *table) store(it *item) *item {
	p, i, ok := tb.find(it)
	if p == nil {
		p = &partition{id: it.hash.id, h: hashID(it.hash.id)}
		tb.parts[it.hash.id] = p
		tb.order = nil
	}
	tb.bytes += len(it.raw)
	if ok {
		old := p.items[i]
		p.items[i] = it
		tb.bytes -= len(old.raw)
		return old
	}
	p.items = slices.Insert(p.items, i, it)
	tb.count++
	return nil
}

func (tb *table) delete(k *item) *item {
	p, i, ok := tb.find(k)
	if !ok {
		return nil
	}
	old := p.items[i]
	p.items = slices.Delete(p.items, i, i+1)
	if len(p.items) == 0 {
		delete(tb.parts, k.hash.id)
		tb.order = nil
	}
	tb.count--
	tb.bytes -= len(old.raw)
	tb.reindex(old, nil)
	return old
}

// reindex replaces old, if not nil, by it, if not nil, in the indexes.
func (tb *table) reindex(old, it *item) {
	for _, ix := range tb.indexes {
		if old != nil {
			ix.remove(old)
		}
		if it != nil {
			ix.add(it)
		}
	}
}

// appendKey appends the attributes keys of it as a JSON object.
func appendKey(dst []byte, it *item, keys []KeyAttribute) []byte {
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		v, _ := it.get(k.Name)
		dst = append(appendJSONString(dst, k.Name), ':')
		dst = append(dst, v...)
	}
	return append(dst, '}')
}

// appendProjected appends it, or only the attributes in names when names
// is not nil.
func appendProjected(dst []byte, it *item, names []string) []byte {
	if names == nil {
		return append(dst, it.raw...)
	}
	dst = append(dst, '{')
	first := true
	for _, a := range it.attrs {
		if !slices.Contains(names, string(a.name)) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(appendJSONString(dst, string(a.name)), ':')
		dst = append(dst, a.value...)
	}
	return append(dst, '}')
}

// projection resolves a ProjectionExpression of top-level attribute names.
func projection(expr string, names map[string]string, used map[string]bool) ([]string, *apiError) {
	if expr == "" {
		return nil, nil
	}
	var out []string
	for _, p := range strings.Split(expr, ",") {
		p = strings.TrimSpace(p)
		if p == "" || strings.ContainsAny(p, ".[] ") {
			return nil, validation("fakedynamo: only top-level attribute names are supported in ProjectionExpression: " + expr)
		}
		name, err := resolveName(p, names, used)
		if err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, nil
}

func resolveName(tok string, names map[string]string, used map[string]bool) (string, *apiError) {
	if !strings.HasPrefix(tok, "#") {
		return tok, nil
	}
	n, ok := names[tok]
	if !ok {
		return "", validation("Value provided in ExpressionAttributeNames unused in expressions or undefined: An expression attribute name used in the document path is not defined; attribute name: " + tok)
	}
	used[tok] = true
	return n, nil
}

func checkNamesUsed(names map[string]string, used map[string]bool) *apiError {
	for k := range names {
		if !used[k] {
			return validation("Value provided in ExpressionAttributeNames unused in expressions: keys: {" + k + "}")
		}
	}
	return nil
}

// describe is the TableDescription of tb.
func (tb *table) describe(status string) map[string]any {
	var defs []map[string]string
	for _, k := range keyAttributesOf(tb.keys, tb.indexes) {
		defs = append(defs, map[string]string{"AttributeName": k.Name, "AttributeType": k.Type})
	}
	d := map[string]any{
		"TableName":            tb.name,
		"TableArn":             tb.arn(),
		"TableStatus":          status,
		"KeySchema":            keySchema(tb.keys),
		"AttributeDefinitions": defs,
		"ItemCount":            tb.count,
		"TableSizeBytes":       tb.bytes,
		"CreationDateTime":     json.Number(strconv.FormatFloat(float64(tb.created.UnixMilli())/1000, 'f', -1, 64)),
		"BillingModeSummary":   map[string]string{"BillingMode": "PAY_PER_REQUEST"},
	}
	if len(tb.indexes) > 0 {
		var gsis []map[string]any
		for _, ix := range tb.indexes {
			gsis = append(gsis, ix.describe(tb, status))
		}
		d["GlobalSecondaryIndexes"] = gsis
	}
	return d
}

// keyAttributesOf returns the key attributes of a table of keys and of
// its indexes, each once.
func keyAttributesOf(keys []KeyAttribute, indexes []*index) []KeyAttribute {
	out := slices.Clone(keys)
	for _, ix := range indexes {
		for _, k := range ix.keys {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

func (tb *table) arn() string { return "arn:aws:dynamodb:us-east-1:000000000000:table/" + tb.name }

// keySchema is the KeySchema of keys.
func keySchema(keys []KeyAttribute) []map[string]string {
	var schema []map[string]string
	for i, k := range keys {
		kt := "HASH"
		if i == 1 {
			kt = "RANGE"
		}
		schema = append(schema, map[string]string{"AttributeName": k.Name, "KeyType": kt})
	}
	return schema
}
