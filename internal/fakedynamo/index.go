package fakedynamo

import (
	"slices"
	"strings"
)

// index is a global secondary index. It is kept up to date on every write,
// so that a Query of it costs what a Query of the table does: its items
// are those of the table that have its key attributes, as it projects
// them, grouped by its hash key, each group in the order of its range key
// and then of the table's key, which makes the order total and the same
// from one request to the next.
type index struct {
	name       string
	keys       []KeyAttribute // hash, then range if any
	projection string         // "ALL", "KEYS_ONLY" or "INCLUDE"
	nonKey     []string       // INCLUDE: the other attributes projected
	attrs      []string       // the attributes projected, nil for ALL
	// startKeys are the attributes of the index's LastEvaluatedKey: the
	// table's key, then the index's key attributes that are not in it.
	startKeys []KeyAttribute
	parts     map[string][]*item // by the index hash key's id
	count     int
	bytes     int // the JSON bytes of the items as projected
}

// indexKey decodes the value raw of an index key attribute k of an item.
// DynamoDB refuses to write an item whose index key has another type than
// the index's, or is empty, even if the item is not in the index.
func (ix *index) indexKey(k KeyAttribute, raw []byte) (keyVal, *apiError) {
	typ, text, ok := scalar(raw)
	if !ok || typ != k.Type {
		return keyVal{}, validation("One or more parameter values were invalid: Type mismatch for Index Key " + k.Name +
			" Expected: " + k.Type + " Actual: " + parseNode(raw).typ + " IndexName: " + ix.name)
	}
	if text == "" && typ != "N" {
		return keyVal{}, validation("One or more parameter values are not valid. A value specified for a secondary index key is not supported. " +
			"The AttributeValue for a key attribute cannot contain an empty " + emptyWhat[typ] + " value. IndexName: " + ix.name + ", IndexKey: " + k.Name)
	}
	v, ok := parseKeyVal(typ, text)
	if !ok {
		return keyVal{}, validation("One or more parameter values were invalid: index key " + k.Name + " is not a valid " + typ)
	}
	return v, nil
}

var emptyWhat = map[string]string{"S": "string", "B": "binary"}

// keysOf returns the values of the index's keys in it, and whether it has
// them all, which puts it in the index.
func (ix *index) keysOf(it *item) (vals [2]keyVal, in bool, err *apiError) {
	in = true
	for i, k := range ix.keys {
		raw, ok := it.get(k.Name)
		if !ok {
			in = false
			continue
		}
		if vals[i], err = ix.indexKey(k, raw); err != nil {
			return vals, false, err
		}
	}
	return vals, in, nil
}

// entry returns the index's item of it, a table's item that has been
// checked, or nil if it is not in the index.
func (ix *index) entry(it *item) *item {
	vals, in, _ := ix.keysOf(it)
	if !in {
		return nil
	}
	var e *item
	if ix.attrs == nil {
		e = &item{raw: it.raw, attrs: it.attrs}
	} else {
		e = readItem(&reader{b: appendProjected(nil, it, ix.attrs)}, false)
	}
	e.hash, e.rng, e.of = vals[0], vals[1], it
	return e
}

// compare orders the items of one of the index's partitions.
func (ix *index) compare(a, b *item) int {
	if c := compareKey(a.rng, b.rng); c != 0 {
		return c
	}
	if c := compareKey(a.of.hash, b.of.hash); c != 0 {
		return c
	}
	return compareKey(a.of.rng, b.of.rng)
}

// add puts the table's item it in the index, if it has the index's keys.
func (ix *index) add(it *item) {
	e := ix.entry(it)
	if e == nil {
		return
	}
	p := ix.parts[e.hash.id]
	i, _ := slices.BinarySearchFunc(p, e, ix.compare)
	ix.parts[e.hash.id] = slices.Insert(p, i, e)
	ix.count++
	ix.bytes += len(e.raw)
}

// remove takes the table's item it out of the index.
func (ix *index) remove(it *item) {
	vals, in, _ := ix.keysOf(it)
	if !in {
		return
	}
	p := ix.parts[vals[0].id]
	i, found := slices.BinarySearchFunc(p, &item{rng: vals[1], of: it}, ix.compare)
	if !found {
		return // not reached: add gave every item with the index's keys an entry
	}
	ix.count--
	ix.bytes -= len(p[i].raw)
	if p = slices.Delete(p, i, i+1); len(p) == 0 {
		delete(ix.parts, vals[0].id)
		return
	}
	ix.parts[vals[0].id] = p
}

// unprojected returns those of names that the index does not project,
// each once.
func (ix *index) unprojected(names []string) []string {
	var out []string
	for _, name := range names {
		if ix.attrs != nil && !slices.Contains(ix.attrs, name) && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// queryIndex serves a Query of one of the table's indexes.
func (tb *table) queryIndex(q *queryInput, lim pageLimit) ([]byte, *apiError) {
	ix, err := tb.findIndex(q)
	if err != nil {
		return nil, err
	}
	hash, rng, err := keyCondition(ix.keys, q.conds)
	if err != nil {
		return nil, err
	}
	if err := ix.checkFilter(q.filter); err != nil {
		return nil, err
	}
	items := ix.parts[hash.id]
	i, step, err := ix.scanStart(tb, items, hash, q.start, q.forward)
	if err != nil {
		return nil, err
	}
	got, size, scanned, last := readPage(items, i, step, rng, q.filter, lim)
	return appendQueryReply(got, size, scanned, last, ix.startKeys, q.attrs, q.sel == "COUNT"), nil
}

// findIndex returns the index a Query names, refusing what DynamoDB
// refuses of a global secondary index: a consistent read, and attributes
// it does not project.
func (tb *table) findIndex(q *queryInput) (*index, *apiError) {
	i := slices.IndexFunc(tb.indexes, func(ix *index) bool { return ix.name == q.index })
	if i < 0 {
		return nil, validation("The table does not have the specified index: " + q.index)
	}
	ix := tb.indexes[i]
	switch {
	case q.consistent:
		return nil, validation("Consistent reads are not supported on global secondary indexes")
	case q.sel == "ALL_ATTRIBUTES" && ix.attrs != nil:
		return nil, validation("One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for global secondary index " +
			ix.name + " because its projection type is not ALL")
	}
	if missing := ix.unprojected(q.attrs); len(missing) > 0 {
		return nil, validation("One or more parameter values were invalid: Global secondary index " + ix.name +
			" does not project [" + strings.Join(missing, ", ") + "]")
	}
	return ix, nil
}

// checkFilter refuses a filter on the index's keys, or on attributes it
// does not project.
func (ix *index) checkFilter(filter conditions) *apiError {
	if err := checkFilterKeys(filter, ix.keys); err != nil {
		return err
	}
	if missing := ix.unprojected(filter.attrNames()); len(missing) > 0 {
		return validation("One or more parameter values were invalid: Secondary index " + ix.name +
			" does not project one or more filter attributes: [" + strings.Join(missing, ", ") + "]")
	}
	return nil
}

// scanStart returns, as the table's scanStart does, where in items, an
// index partition's, a query resumes after start, and the step to the next
// item.
func (ix *index) scanStart(tb *table, items []*item, hash keyVal, start *item, forward bool) (int, int, *apiError) {
	if start == nil && forward {
		return 0, 1, nil
	}
	if start == nil {
		return len(items) - 1, -1, nil
	}
	probe, err := ix.startKey(tb, start, hash)
	if err != nil {
		return 0, 0, err
	}
	// i is where the start key is, or would be.
	i, found := slices.BinarySearchFunc(items, probe, ix.compare)
	if !forward {
		return i - 1, -1, nil
	}
	if found {
		i++
	}
	return i, 1, nil
}

// startKey reads an ExclusiveStartKey of the index, which holds the
// attributes of startKeys and no others, as an index item (with no
// attributes) to find its place by.
func (ix *index) startKey(tb *table, start *item, hash keyVal) (*item, *apiError) {
	if len(start.attrs) != len(ix.startKeys) {
		return nil, validation("The provided starting key is invalid: The provided key element does not match the schema")
	}
	probe := &item{of: start}
	err := tb.readKeys(start, "key")
	if err == nil {
		probe.hash, err = keyOf(start, ix.keys[0], "key")
	}
	if err == nil && len(ix.keys) == 2 {
		probe.rng, err = keyOf(start, ix.keys[1], "key")
	}
	if err != nil {
		return nil, validation("The provided starting key is invalid: " + err.msg)
	}
	if probe.hash.id != hash.id {
		return nil, validation("The provided starting key is invalid: The provided key element does not match the schema")
	}
	return probe, nil
}

// describe is the GlobalSecondaryIndexes member of the index, of tb.
func (ix *index) describe(tb *table, status string) map[string]any {
	proj := map[string]any{"ProjectionType": ix.projection}
	if ix.nonKey != nil {
		proj["NonKeyAttributes"] = ix.nonKey
	}
	return map[string]any{
		"IndexName":      ix.name,
		"IndexArn":       tb.arn() + "/index/" + ix.name,
		"IndexStatus":    status,
		"KeySchema":      keySchema(ix.keys),
		"Projection":     proj,
		"ItemCount":      ix.count,
		"IndexSizeBytes": ix.bytes,
	}
}

// indexInput is a member of a CreateTable's GlobalSecondaryIndexes. Its
// throughput members are ignored, as the table's are.
type indexInput struct {
	IndexName  string
	KeySchema  []keySchemaElement
	Projection *struct {
		ProjectionType   string
		NonKeyAttributes []string
	}
}

// newIndexes checks the GlobalSecondaryIndexes of a table of keys and
// returns their indexes.
func newIndexes(in []indexInput, keys []KeyAttribute, types map[string]string) ([]*index, *apiError) {
	if in != nil && len(in) == 0 {
		return nil, validation("One or more parameter values were invalid: List of GlobalSecondaryIndexes is empty")
	}
	if len(in) > 20 {
		return nil, validation("One or more parameter values were invalid: GlobalSecondaryIndex count exceeds the per-table limit of 20")
	}
	var out []*index
	for _, gi := range in {
		if slices.ContainsFunc(out, func(ix *index) bool { return ix.name == gi.IndexName }) {
			return nil, validation("One or more parameter values were invalid: Duplicate index name: " + gi.IndexName)
		}
		ix, err := newIndex(gi, keys, types)
		if err != nil {
			return nil, err
		}
		out = append(out, ix)
	}
	return out, nil
}

// newIndex checks one index of a table of keys and returns it, empty.
func newIndex(in indexInput, keys []KeyAttribute, types map[string]string) (*index, *apiError) {
	if err := checkIndexName(in.IndexName); err != nil {
		return nil, err
	}
	ikeys, err := keyAttributes(in.KeySchema, types)
	if err != nil {
		return nil, err
	}
	if err := checkKeys(ikeys, "an index"); err != nil {
		return nil, err
	}
	ix := &index{name: in.IndexName, keys: ikeys, startKeys: slices.Clone(keys), parts: map[string][]*item{}}
	for _, k := range ikeys {
		if !slices.Contains(keys, k) {
			ix.startKeys = append(ix.startKeys, k)
		}
	}
	if err := ix.setProjection(in); err != nil {
		return nil, err
	}
	return ix, nil
}

func checkIndexName(name string) *apiError {
	if len(name) < 3 || len(name) > 255 || strings.Trim(name, placeholderChars+".-") != "" {
		return validation("IndexName must be between 3 and 255 characters long, of letters, digits, _, - and .: " + name)
	}
	return nil
}

// setProjection checks the index's Projection and sets what it projects:
// the table's and the index's keys always, and for INCLUDE the
// NonKeyAttributes.
func (ix *index) setProjection(in indexInput) *apiError {
	if in.Projection == nil {
		return validation("One or more parameter values were invalid: Unknown ProjectionType: null")
	}
	p := in.Projection
	if err := checkProjection(p.ProjectionType, p.NonKeyAttributes); err != nil {
		return err
	}
	ix.projection, ix.nonKey = p.ProjectionType, p.NonKeyAttributes
	if p.ProjectionType == "ALL" {
		return nil
	}
	for _, k := range ix.startKeys {
		ix.attrs = append(ix.attrs, k.Name)
	}
	ix.attrs = append(ix.attrs, p.NonKeyAttributes...)
	return nil
}

func checkProjection(typ string, nonKey []string) *apiError {
	switch typ {
	case "":
		return validation("One or more parameter values were invalid: Unknown ProjectionType: null")
	case "ALL", "KEYS_ONLY":
		if nonKey != nil {
			return validation("One or more parameter values were invalid: ProjectionType is " + typ + ", but NonKeyAttributes is specified")
		}
	case "INCLUDE":
		if nonKey != nil && len(nonKey) == 0 {
			return validation("1 validation error detected: Value '[]' at 'nonKeyAttributes' failed to satisfy constraint: Member must have length greater than or equal to 1")
		}
	default:
		return validation("One or more parameter values were invalid: Unknown ProjectionType: " + typ)
	}
	return nil
}
