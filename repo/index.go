package repo

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// index is a secondary index declared on T with `repo:"gsi:NAME:hash"`,
// `repo:"gsi:NAME:range"` or `repo:"lsi:NAME:range"` tags.
type index struct {
	name  string
	local bool
	// hash is the index's partition key; for a local index, the table's.
	hash, rng *attr
	// projection is what the index copies from the table (see
	// WithIndexProjection); ALL unless an option says otherwise.
	projection types.Projection
}

// maxLocalIndexes is DynamoDB's limit of local secondary indexes per table.
const maxLocalIndexes = 5

// indexRole records a secondary-index role of f's `repo` tag.
func (c *planner) indexRole(f *attr, role string) error {
	name, local, isRange, err := parseIndexRole(role)
	key := f
	switch {
	case err != nil:
	case f.node != nil:
		key, err = c.p.beaconIndexKey(f, name, local, isRange)
	default:
		err = checkIndexKey(f)
	}
	if err != nil {
		return fmt.Errorf("repo: field %s: role %q in `repo` tag: %w", f.goName, role, err)
	}
	ix := c.p.indexNamed(name, local)
	slot, part := &ix.hash, "hash"
	if isRange {
		slot, part = &ix.rng, "range"
	}
	switch {
	case ix.local != local:
		return fmt.Errorf("repo: field %s: index %q is declared both as a global and as a local secondary index", f.goName, name)
	case *slot != nil:
		return fmt.Errorf("repo: field %s: index %q has two %s keys, %s and %s", f.goName, name, part, (*slot).goName, f.goName)
	}
	*slot = key
	return nil
}

// parseIndexRole reads an index role: gsi:NAME:hash, gsi:NAME:range or
// lsi:NAME:range.
func parseIndexRole(role string) (name string, local, isRange bool, err error) {
	kind, rest, _ := strings.Cut(role, ":")
	name, part, _ := strings.Cut(rest, ":")
	switch kind + ":" + part {
	case "gsi:hash", "gsi:range", "lsi:range":
	case "lsi:hash":
		return "", false, false, fmt.Errorf("a local secondary index has the table's hash key; declare only its range key, lsi:%s:range", name)
	default:
		return "", false, false, errors.New("unknown role (index roles are gsi:NAME:hash, gsi:NAME:range and lsi:NAME:range)")
	}
	if !indexNameRE.MatchString(name) {
		return "", false, false, fmt.Errorf("index name %q: DynamoDB takes 3 to 255 characters of a-z, A-Z, 0-9, '_', '.' and '-'", name)
	}
	return name, kind == "lsi", part == "range", nil
}

// indexNameRE is DynamoDB's rule for index names.
var indexNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,255}$`)

// checkIndexKey checks that f, a plain attribute, can be an index key:
// DynamoDB reads it, so it is stored as a string, number or binary.
func checkIndexKey(f *attr) error {
	if _, err := attributeType(f); err != nil {
		return err
	}
	return nil
}

// indexNamed returns the index declared as name, adding it if new.
func (p *plan) indexNamed(name string, local bool) *index {
	for _, ix := range p.indexes {
		if ix.name == name {
			return ix
		}
	}
	ix := &index{name: name, local: local, projection: types.Projection{ProjectionType: types.ProjectionTypeAll}}
	p.indexes = append(p.indexes, ix)
	return ix
}

// indexes checks the declared indexes once all roles are known, puts them
// in name order (so CreateTable sends the same request every time) and
// applies the projections of the repository's options.
func (c *planner) indexes(projections []IndexProjection) error {
	p := c.p
	slices.SortFunc(p.indexes, func(a, b *index) int { return strings.Compare(a.name, b.name) })
	locals := 0
	for _, ix := range p.indexes {
		if err := p.checkIndex(ix); err != nil {
			return fmt.Errorf("repo: %s: index %q: %w", p.typ, ix.name, err)
		}
		if ix.local {
			locals++
		}
	}
	if locals > maxLocalIndexes {
		return fmt.Errorf("repo: %s declares %d local secondary indexes; DynamoDB allows %d per table", p.typ, locals, maxLocalIndexes)
	}
	return p.project(projections)
}

func (p *plan) checkIndex(ix *index) error {
	if !ix.local {
		switch {
		case ix.hash == nil:
			return fmt.Errorf("a global secondary index needs a hash key: tag a field `repo:\"gsi:%s:hash\"`", ix.name)
		case ix.hash == ix.rng:
			return fmt.Errorf("field %s is both its hash and its range key", ix.hash.goName)
		}
		return nil
	}
	switch {
	case p.rng == nil:
		return fmt.Errorf("a local secondary index needs a table with a range key; %s has none", p.typ)
	case ix.rng == p.rng:
		return fmt.Errorf("field %s is the table's range key already; a local secondary index sorts by another attribute", ix.rng.goName)
	}
	ix.hash = p.hash
	return nil
}

// IndexProjection says what a secondary index declared on the item type
// copies from the table; see [WithIndexProjection].
type IndexProjection struct {
	Index string
	// Attributes are the attributes copied besides the keys; none means
	// the keys only.
	Attributes []string
}

// WithIndexProjection sets what the index declared on the item type as
// index copies from the table, for CreateTable: with no attributes only the
// keys (KEYS_ONLY), otherwise the keys and the attributes named (INCLUDE).
// Without the option an index copies every attribute (ALL).
//
// An encrypted attribute named brings along what opening it takes (the
// attributes its spec's ContextFrom names; the keys, which version 2 binds
// values to, are always copied), so that it opens when read from the index.
// Naming an attribute the item type does not have, an index it does not
// declare, or the same index twice is an error from New.
func WithIndexProjection(index string, attrs ...string) Option {
	return func(o *Options) {
		o.IndexProjections = append(o.IndexProjections, IndexProjection{Index: index, Attributes: attrs})
	}
}

// project applies the projections of the repository's options to the
// declared indexes.
func (p *plan) project(projections []IndexProjection) error {
	seen := map[string]bool{}
	for _, pr := range projections {
		ix := p.declaredIndex(pr.Index)
		switch {
		case ix == nil:
			return fmt.Errorf("repo: WithIndexProjection(%q): %s declares no index %q", pr.Index, p.typ, pr.Index)
		case seen[pr.Index]:
			return fmt.Errorf("repo: WithIndexProjection(%q) given twice", pr.Index)
		}
		seen[pr.Index] = true
		nonKey, err := p.nonKeyAttributes(ix, pr.Attributes)
		if err == nil {
			err = p.checkBeaconIndex(ix, pr.Attributes)
		}
		if err != nil {
			return fmt.Errorf("repo: WithIndexProjection(%q): %w", pr.Index, err)
		}
		ix.projection = types.Projection{ProjectionType: types.ProjectionTypeKeysOnly}
		if len(nonKey) > 0 {
			ix.projection = types.Projection{ProjectionType: types.ProjectionTypeInclude, NonKeyAttributes: nonKey}
		}
	}
	return nil
}

// nonKeyAttributes checks the attributes to project into ix and adds what
// opening the encrypted ones takes; keys, always projected, are left out.
func (p *plan) nonKeyAttributes(ix *index, attrs []string) ([]string, error) {
	var out []string
	for _, a := range attrs {
		if _, ok := p.top[a]; !ok {
			return nil, fmt.Errorf("%s has no attribute %q (name top-level attributes)", p.typ, a)
		}
		out = appendNew(out, a)
		out = appendNew(out, p.needs[a]...)
		out = appendNew(out, p.beaconNeeds(a)...)
	}
	keys := ix.keyNames(p)
	return slices.DeleteFunc(out, func(a string) bool { return slices.Contains(keys, a) }), nil
}

// keyNames are the attributes every projection of ix holds: the table's
// key and the index's.
func (ix *index) keyNames(p *plan) []string {
	keys := p.keyNames()
	for _, k := range []*attr{ix.hash, ix.rng} {
		if k != nil {
			keys = appendNew(keys, k.name)
		}
	}
	return keys
}

func (p *plan) declaredIndex(name string) *index {
	for _, ix := range p.indexes {
		if ix.name == name {
			return ix
		}
	}
	return nil
}

// checkIndexHasTTL refuses SkipExpired on a declared global index that does
// not copy the ttl attribute: its filter would find the attribute missing
// on every item and keep them all. (A local index reads attributes it does
// not copy from the table.)
func (p *plan) checkIndexHasTTL(name string) error {
	ix := p.declaredIndex(name)
	if ix == nil || ix.local || ix.projection.ProjectionType == types.ProjectionTypeAll {
		return nil
	}
	if slices.Contains(ix.keyNames(p), p.ttl.name) || slices.Contains(ix.projection.NonKeyAttributes, p.ttl.name) {
		return nil
	}
	return fmt.Errorf("index %q does not copy the ttl attribute %q; add it with WithIndexProjection", name, p.ttl.name)
}

// tableSchema adds to in the key schema of the table and of every declared
// index, with one definition per key attribute.
func (p *plan) tableSchema(in *dynamodb.CreateTableInput) error {
	d := keyDefinitions{in: in, done: map[string]bool{}}
	var err error
	if in.KeySchema, err = d.keys(p.hash, p.rng); err != nil {
		return err
	}
	for _, ix := range p.indexes {
		ks, err := d.keys(ix.hash, ix.rng)
		if err != nil {
			return fmt.Errorf("index %s: %w", ix.name, err)
		}
		proj := ix.projection
		if ix.local {
			in.LocalSecondaryIndexes = append(in.LocalSecondaryIndexes, types.LocalSecondaryIndex{IndexName: aws.String(ix.name), KeySchema: ks, Projection: &proj})
			continue
		}
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{IndexName: aws.String(ix.name), KeySchema: ks, Projection: &proj})
	}
	return nil
}

// keyDefinitions adds the key attributes of a CreateTable request to its
// AttributeDefinitions, each once: DynamoDB refuses a name defined twice.
type keyDefinitions struct {
	in   *dynamodb.CreateTableInput
	done map[string]bool
}

// keys is the key schema of hash and rng (nil for none), defining each.
func (d keyDefinitions) keys(hash, rng *attr) ([]types.KeySchemaElement, error) {
	var ks []types.KeySchemaElement
	for _, k := range []*attr{hash, rng} {
		if k == nil {
			continue
		}
		kt := types.KeyTypeHash
		if k == rng {
			kt = types.KeyTypeRange
		}
		ks = append(ks, types.KeySchemaElement{AttributeName: aws.String(k.name), KeyType: kt})
		if err := d.define(k); err != nil {
			return nil, err
		}
	}
	return ks, nil
}

func (d keyDefinitions) define(k *attr) error {
	if d.done[k.name] {
		return nil
	}
	at, err := attributeType(k)
	if err != nil {
		return fmt.Errorf("key %s: %w", k.name, err)
	}
	d.done[k.name] = true
	d.in.AttributeDefinitions = append(d.in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(k.name), AttributeType: at})
	return nil
}
