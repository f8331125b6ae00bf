package fakedynamo

import (
	"cmp"
	"strconv"
	"strings"
)

// pathElem is one step of a document path: a name, or a list index.
type pathElem struct {
	name    string
	index   int
	isIndex bool
}

// docPath is a document path: a top-level attribute's name, then map
// member names and list indexes.
type docPath []pathElem

func (p docPath) String() string {
	parts := make([]string, len(p))
	for i, e := range p {
		parts[i] = e.name
		if e.isIndex {
			parts[i] = "[" + strconv.Itoa(e.index) + "]"
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// overlaps reports whether one of p and q is a prefix of the other.
func (p docPath) overlaps(q docPath) bool {
	for i := range min(len(p), len(q)) {
		if p[i] != q[i] {
			return false
		}
	}
	return true
}

// comparePaths orders paths step by step, list indexes by number.
func comparePaths(p, q docPath) int {
	for i := range min(len(p), len(q)) {
		a, b := p[i], q[i]
		if c := cmp.Compare(a.index, b.index); a.isIndex && b.isIndex && c != 0 {
			return c
		}
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(p), len(q))
}

// exprParser reads the tokens of an UpdateExpression or a
// ConditionExpression, resolving #names and :values and marking them used.
type exprParser struct {
	kind                  string // the request member, for messages
	toks                  []string
	i                     int
	names                 map[string]string
	values                map[string][]byte
	usedNames, usedValues map[string]bool
	err                   *apiError
}

func (p *exprParser) fail(err *apiError) {
	if p.err == nil {
		p.err = err
	}
}

func (p *exprParser) unsupported(what string) {
	p.fail(validation("fakedynamo: " + what + " is not supported in " + p.kind))
}

func (p *exprParser) peek() string {
	if p.err != nil || p.i >= len(p.toks) {
		return ""
	}
	return p.toks[p.i]
}

func (p *exprParser) next() string {
	t := p.peek()
	if t == "" {
		p.fail(validation("Invalid " + p.kind + ": Syntax error; token: \"<EOF>\""))
		return ""
	}
	p.i++
	return t
}

func (p *exprParser) want(tok string) {
	if t := p.next(); p.err == nil && t != tok {
		p.fail(validation("Invalid " + p.kind + ": Syntax error; token: \"" + t + "\", expected \"" + tok + "\""))
	}
}

// path reads a document path of #name placeholders, list indexes and
// dots, such as #a[2].#b.
func (p *exprParser) path() docPath {
	tok := p.next()
	if p.err != nil {
		return nil
	}
	var path docPath
	for _, part := range strings.Split(tok, ".") {
		name, rest, _ := strings.Cut(part, "[")
		path = append(path, p.pathName(name, tok))
		if part != name {
			path = append(path, p.indexes("["+rest, tok)...)
		}
	}
	if p.err != nil {
		return nil
	}
	return path
}

func (p *exprParser) pathName(name, tok string) pathElem {
	if len(name) < 2 || name[0] != '#' || !isPlaceholder(name[1:]) {
		p.unsupported("the operand " + tok + " (only document paths of #name placeholders, and :value placeholders)")
		return pathElem{}
	}
	n, err := resolveName(name, p.names, p.usedNames)
	if err != nil {
		p.fail(err)
	}
	return pathElem{name: n}
}

// indexes reads the list indexes, such as [2][0], that follow a name.
func (p *exprParser) indexes(s, tok string) []pathElem {
	var out []pathElem
	for s != "" {
		i, rest, ok := readIndex(s)
		if !ok {
			p.fail(validation("Invalid " + p.kind + ": Syntax error; token: \"" + tok + "\""))
			break
		}
		out = append(out, pathElem{index: i, isIndex: true})
		s = rest
	}
	return out
}

// readIndex reads an index such as [2] from the start of s.
func readIndex(s string) (int, string, bool) {
	end := strings.IndexByte(s, ']')
	if s[0] != '[' || end < 2 || strings.Trim(s[1:end], "0123456789") != "" {
		return 0, "", false
	}
	i, err := strconv.Atoi(s[1:end])
	return i, s[end+1:], err == nil
}

const placeholderChars = "_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// isPlaceholder reports whether s is the tail of a #name or :value.
func isPlaceholder(s string) bool {
	return s != "" && strings.Trim(s, placeholderChars) == ""
}

// value reads a :value placeholder.
func (p *exprParser) value() []byte {
	tok := p.next()
	if p.err != nil {
		return nil
	}
	if len(tok) < 2 || tok[0] != ':' || !isPlaceholder(tok[1:]) {
		p.unsupported("the operand " + tok + " (only :value placeholders as values)")
		return nil
	}
	v, ok := p.values[tok]
	if !ok {
		p.fail(validation("Invalid " + p.kind + ": An expression attribute value used in expression is not defined; attribute value: " + tok))
		return nil
	}
	p.usedValues[tok] = true
	return v
}

// condition is one condition of a ConditionExpression or a
// FilterExpression: a = b, a <> b, or fn(a) for fn attribute_exists or
// attribute_not_exists.
type condition struct {
	fn   string
	a, b operand
}

// operand is a document path or a :value's node.
type operand struct {
	path  docPath
	value *node
}

// conditions are conditions joined by AND.
type conditions []condition

// holds reports whether every condition holds for it.
func (cs conditions) holds(it *item) bool {
	for _, c := range cs {
		if !c.holds(it) {
			return false
		}
	}
	return true
}

// attrNames returns the top-level attributes the conditions' paths read.
func (cs conditions) attrNames() []string {
	var out []string
	for _, c := range cs {
		for _, o := range [2]operand{c.a, c.b} {
			if o.path != nil {
				out = append(out, o.path[0].name)
			}
		}
	}
	return out
}

// conditions reads conditions joined by AND.
func (p *exprParser) conditions() conditions {
	conds := p.conjunction()
	if t := p.peek(); t != "" {
		p.unsupported(strconv.Quote(t) + " (conditions are joined by AND only)")
	}
	return conds
}

// conjunction reads terms joined by AND, flattened: with AND alone,
// grouping changes nothing.
func (p *exprParser) conjunction() conditions {
	conds := p.term()
	for p.err == nil && strings.EqualFold(p.peek(), "AND") {
		p.i++
		conds = append(conds, p.term()...)
	}
	return conds
}

// term reads a condition, or a conjunction in parentheses (the expression
// builder puts each operand of AND in parentheses).
func (p *exprParser) term() conditions {
	if p.peek() != "(" {
		return conditions{p.condition()}
	}
	p.i++
	conds := p.conjunction()
	p.want(")")
	return conds
}

func (p *exprParser) condition() condition {
	switch t := p.peek(); t {
	case "attribute_exists", "attribute_not_exists":
		p.i++
		p.want("(")
		c := condition{fn: t, a: operand{path: p.path()}}
		p.want(")")
		return c
	}
	a := p.operand()
	op := p.next()
	if p.err == nil && op != "=" && op != "<>" {
		p.unsupported("the comparison " + strconv.Quote(op) + " (= and <> only)")
	}
	return condition{fn: op, a: a, b: p.operand()}
}

func (p *exprParser) operand() operand {
	if strings.HasPrefix(p.peek(), ":") {
		if v := p.value(); v != nil {
			return operand{value: parseNode(v)}
		}
		return operand{}
	}
	return operand{path: p.path()}
}

// holds reports whether c holds for it, which is nil if there is no item.
// a <> b holds where a = b does not, so also where either is missing.
func (c condition) holds(it *item) bool {
	a := c.a.eval(it)
	switch c.fn {
	case "attribute_exists":
		return a != nil
	case "attribute_not_exists":
		return a == nil
	}
	b := c.b.eval(it)
	equal := a != nil && b != nil && equalNodes(a, b)
	return equal != (c.fn == "<>")
}

// eval returns the value of o in it, or nil if it has none.
func (o operand) eval(it *item) *node {
	if o.value != nil {
		return o.value
	}
	if it == nil {
		return nil
	}
	raw, ok := it.get(o.path[0].name)
	if !ok {
		return nil
	}
	n := parseNode(raw)
	for _, e := range o.path[1:] {
		if n = n.child(e); n == nil {
			return nil
		}
	}
	return n
}
