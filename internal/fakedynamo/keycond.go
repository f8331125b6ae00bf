package fakedynamo

import (
	"strings"
)

// keyCond is one comparison of a key condition: attr op values.
type keyCond struct {
	attr   string
	op     string // "=", "<", "<=", ">", ">=", "BETWEEN", "begins_with"
	values [][]byte
}

// rangeCond is a key condition's comparison on the range key, decoded.
type rangeCond struct {
	op     string
	values []keyVal
}

func (c *rangeCond) match(k keyVal) bool {
	a := c.values[0]
	switch c.op {
	case "=":
		return compareKey(k, a) == 0
	case "<":
		return compareKey(k, a) < 0
	case "<=":
		return compareKey(k, a) <= 0
	case ">":
		return compareKey(k, a) > 0
	case ">=":
		return compareKey(k, a) >= 0
	case "BETWEEN":
		return compareKey(k, a) >= 0 && compareKey(k, c.values[1]) <= 0
	case "begins_with":
		return strings.HasPrefix(k.s, a.s)
	}
	return false
}

// keyCondition checks conds against the key schema of a table or an index
// and decodes them: an equality on the hash key and at most one condition
// on the range key.
func keyCondition(keys []KeyAttribute, conds []keyCond) (hash keyVal, rng *rangeCond, err *apiError) {
	var haveHash bool
	for _, c := range conds {
		switch {
		case c.attr == keys[0].Name:
			if c.op != "=" || haveHash {
				return hash, nil, validation("Query key condition not supported")
			}
			v, err := condValue(c.values[0], keys[0])
			if err != nil {
				return hash, nil, err
			}
			hash, haveHash = v, true
		case len(keys) == 2 && c.attr == keys[1].Name:
			if rng != nil {
				return hash, nil, validation("KeyConditionExpressions must only contain one condition per key")
			}
			if c.op == "begins_with" && keys[1].Type == "N" {
				return hash, nil, validation("Invalid KeyConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: N")
			}
			rng = &rangeCond{op: c.op}
			for _, raw := range c.values {
				v, err := condValue(raw, keys[1])
				if err != nil {
					return hash, nil, err
				}
				rng.values = append(rng.values, v)
			}
		default:
			return hash, nil, validation("Query condition missed key schema element: " + keys[0].Name)
		}
	}
	if !haveHash {
		return hash, nil, validation("Query condition missed key schema element: " + keys[0].Name)
	}
	return hash, rng, nil
}

func condValue(raw []byte, k KeyAttribute) (keyVal, *apiError) {
	typ, text, ok := scalar(raw)
	if !ok || typ != k.Type {
		return keyVal{}, validation("One or more parameter values were invalid: Condition parameter type does not match schema type")
	}
	v, ok := parseKeyVal(typ, text)
	if !ok {
		return keyVal{}, validation("One or more parameter values were invalid: not a valid " + typ + ": " + text)
	}
	return v, nil
}

// parseKeyCondition parses a KeyConditionExpression: comparisons joined by
// AND, each maybe in parentheses, resolving #names and :values.
func parseKeyCondition(expr string, names map[string]string, values map[string][]byte, usedNames, usedValues map[string]bool) ([]keyCond, *apiError) {
	p := condParser{toks: tokenize(expr), names: names, values: values, usedNames: usedNames, usedValues: usedValues}
	p.expr()
	if p.err == nil && p.i != len(p.toks) {
		p.fail("unexpected " + p.toks[p.i])
	}
	if p.err != nil {
		return nil, p.err
	}
	return p.conds, nil
}

func tokenize(s string) []string {
	var toks []string
	for i := 0; i < len(s); {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			n := tokenLen(s[i:])
			toks = append(toks, s[i:i+n])
			i += n
		}
	}
	return toks
}

// tokenLen is the length of the token s starts with; s is not empty and
// does not start with space.
func tokenLen(s string) int {
	switch c := s[0]; c {
	case '(', ')', ',', '=':
		return 1
	case '<', '>':
		if len(s) > 1 && (s[1] == '=' || c == '<' && s[1] == '>') {
			return 2
		}
		return 1
	}
	// A name, a #name, a :value or a keyword runs to the next space or
	// punctuation.
	if n := strings.IndexAny(s, " \t\n\r(),=<>"); n >= 0 {
		return n
	}
	return len(s)
}

type condParser struct {
	toks                  []string
	i                     int
	names                 map[string]string
	values                map[string][]byte
	usedNames, usedValues map[string]bool
	conds                 []keyCond
	err                   *apiError
}

func (p *condParser) fail(msg string) {
	if p.err == nil {
		p.err = validation("Invalid KeyConditionExpression: " + msg)
	}
}

func (p *condParser) peek() string {
	if p.err != nil || p.i >= len(p.toks) {
		return ""
	}
	return p.toks[p.i]
}

func (p *condParser) next() string {
	t := p.peek()
	if t == "" {
		p.fail("unexpected end of expression")
		return ""
	}
	p.i++
	return t
}

func (p *condParser) want(tok string) {
	if t := p.next(); p.err == nil && !strings.EqualFold(t, tok) {
		p.fail("expected " + tok + ", found " + t)
	}
}

func (p *condParser) expr() {
	p.term()
	for p.err == nil && strings.EqualFold(p.peek(), "AND") {
		p.i++
		p.term()
	}
}

func (p *condParser) term() {
	switch t := p.peek(); {
	case t == "(":
		p.i++
		p.expr()
		p.want(")")
	case t == "begins_with":
		p.i++
		p.want("(")
		attr := p.operand()
		p.want(",")
		v := p.value()
		p.want(")")
		p.conds = append(p.conds, keyCond{attr: attr, op: "begins_with", values: [][]byte{v}})
	default:
		attr := p.operand()
		switch op := p.next(); {
		case op == "=" || op == "<" || op == "<=" || op == ">" || op == ">=":
			p.conds = append(p.conds, keyCond{attr: attr, op: op, values: [][]byte{p.value()}})
		case strings.EqualFold(op, "BETWEEN"):
			lo := p.value()
			p.want("AND")
			hi := p.value()
			p.conds = append(p.conds, keyCond{attr: attr, op: "BETWEEN", values: [][]byte{lo, hi}})
		default:
			p.fail("unsupported operator " + op)
		}
	}
}

func (p *condParser) operand() string {
	t := p.next()
	if p.err != nil {
		return ""
	}
	if t == "" || strings.HasPrefix(t, ":") || strings.ContainsAny(t, ".[]") {
		p.fail("expected an attribute name, found " + t)
		return ""
	}
	name, err := resolveName(t, p.names, p.usedNames)
	if err != nil && p.err == nil {
		p.err = err
	}
	return name
}

func (p *condParser) value() []byte {
	t := p.next()
	if p.err != nil {
		return nil
	}
	if !strings.HasPrefix(t, ":") {
		p.fail("expected a :value, found " + t)
		return nil
	}
	v, ok := p.values[t]
	if !ok {
		p.err = validation("Invalid KeyConditionExpression: An expression attribute value used in expression is not defined; attribute value: " + t)
		return nil
	}
	p.usedValues[t] = true
	return v
}
