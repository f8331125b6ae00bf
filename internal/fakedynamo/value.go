package fakedynamo

import (
	"encoding/base64"
	"math/big"
	"slices"
	"strconv"
	"strings"
)

// node is an attribute value decoded, for the paths into it that
// UpdateItem sets and conditions read. A value is checked for shape when
// read from a request, so decoding it cannot fail.
type node struct {
	typ   string
	raw   []byte   // S, N, B, SS, NS, BS, BOOL, NULL: the value as sent
	text  []string // S, N, B, BOOL, NULL: the value; SS, NS, BS: the members
	names []string // M: the member names
	elems []*node  // M: the member values; L: the elements
}

func parseNode(raw []byte) *node {
	return readNode(&reader{b: raw})
}

func readNode(r *reader) *node {
	n := &node{}
	r.peek()
	start := r.i
	r.objectRaw(func(tag []byte) {
		n.typ = string(tag)
		switch n.typ {
		case "M":
			r.objectRaw(func(name []byte) {
				n.names = append(n.names, string(name))
				n.elems = append(n.elems, readNode(r))
			})
		case "L":
			r.array(func() { n.elems = append(n.elems, readNode(r)) })
		case "SS", "NS", "BS":
			r.array(func() { n.text = append(n.text, r.str()) })
		case "BOOL", "NULL":
			n.text = []string{strconv.FormatBool(r.boolean())}
		default:
			n.text = []string{r.str()}
		}
	})
	n.raw = r.b[start:r.i]
	return n
}

// appendTo appends n as an attribute value.
func (n *node) appendTo(dst []byte) []byte {
	switch n.typ {
	case "M":
		dst = append(dst, `{"M":{`...)
		for i, name := range n.names {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = n.elems[i].appendTo(append(appendJSONString(dst, name), ':'))
		}
		return append(dst, "}}"...)
	case "L":
		dst = append(dst, `{"L":[`...)
		for i, e := range n.elems {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = e.appendTo(dst)
		}
		return append(dst, "]}"...)
	}
	return append(dst, n.raw...)
}

// child returns the member or element e of n, or nil.
func (n *node) child(e pathElem) *node {
	if e.isIndex {
		if n.typ != "L" || e.index >= len(n.elems) {
			return nil
		}
		return n.elems[e.index]
	}
	if n.typ != "M" {
		return nil
	}
	if i := slices.Index(n.names, e.name); i >= 0 {
		return n.elems[i]
	}
	return nil
}

// put sets the member or element e of n to v, reporting whether n has
// the type e needs. An index past a list's end appends, as DynamoDB does.
func (n *node) put(e pathElem, v *node) bool {
	if e.isIndex {
		if n.typ != "L" {
			return false
		}
		if e.index < len(n.elems) {
			n.elems[e.index] = v
		} else {
			n.elems = append(n.elems, v)
		}
		return true
	}
	if n.typ != "M" {
		return false
	}
	if i := slices.Index(n.names, e.name); i >= 0 {
		n.elems[i] = v
		return true
	}
	n.names, n.elems = append(n.names, e.name), append(n.elems, v)
	return true
}

// equalNodes reports whether a and b are the same attribute value:
// the same type and equal, numbers by value, binary by bytes, sets
// regardless of order, maps regardless of member order.
func equalNodes(a, b *node) bool {
	if a.typ != b.typ {
		return false
	}
	switch a.typ {
	case "M":
		return equalMaps(a, b)
	case "L":
		return slices.EqualFunc(a.elems, b.elems, equalNodes)
	case "SS", "NS", "BS":
		return equalSets(a, b)
	}
	return canonical(a.typ, a.text[0]) == canonical(b.typ, b.text[0])
}

func equalMaps(a, b *node) bool {
	if len(a.names) != len(b.names) {
		return false
	}
	for i, name := range a.names {
		j := slices.Index(b.names, name)
		if j < 0 || !equalNodes(a.elems[i], b.elems[j]) {
			return false
		}
	}
	return true
}

func equalSets(a, b *node) bool {
	set := map[string]bool{}
	for _, m := range a.text {
		set[canonical(a.typ[:1], m)] = true
	}
	other := map[string]bool{}
	for _, m := range b.text {
		if c := canonical(b.typ[:1], m); set[c] {
			other[c] = true
		} else {
			return false
		}
	}
	return len(other) == len(set)
}

// canonical is a scalar's form that equal values share. A number or
// binary that does not decode keeps a form no valid one has.
func canonical(typ, text string) string {
	switch typ {
	case "N":
		if d, ok := parseDecimal(text); ok {
			return d.String()
		}
		return "\x00" + text
	case "B":
		if b, err := base64.StdEncoding.DecodeString(text); err == nil {
			return string(b)
		}
		return "\x00" + text
	}
	return text
}

// decimal is the number m × 10^e, with no trailing zeros in m (e is 0
// when m is).
type decimal struct {
	m *big.Int
	e int
}

var bigTen = big.NewInt(10)

// parseDecimal reads a number as DynamoDB writes them: digits with an
// optional sign, decimal point and exponent.
func parseDecimal(s string) (decimal, bool) {
	mant, exp, ok := splitExponent(s)
	if !ok {
		return decimal{}, false
	}
	neg := strings.HasPrefix(mant, "-")
	mant = strings.TrimPrefix(strings.TrimPrefix(mant, "-"), "+")
	whole, frac, _ := strings.Cut(mant, ".")
	digits := whole + frac
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return decimal{}, false
	}
	m, _ := new(big.Int).SetString(digits, 10)
	if neg {
		m.Neg(m)
	}
	return normal(m, exp-len(frac)), true
}

// splitExponent splits a number into its mantissa and exponent, which is
// kept within bounds far beyond DynamoDB's.
func splitExponent(s string) (string, int, bool) {
	i := strings.IndexAny(s, "eE")
	if i < 0 {
		return s, 0, true
	}
	exp, err := strconv.Atoi(s[i+1:])
	return s[:i], exp, err == nil && exp >= -1000 && exp <= 1000
}

func normal(m *big.Int, e int) decimal {
	if m.Sign() == 0 {
		return decimal{m, 0}
	}
	q, r := new(big.Int), new(big.Int)
	for {
		q.QuoRem(m, bigTen, r)
		if r.Sign() != 0 {
			return decimal{m, e}
		}
		m, q = q, m
		e++
	}
}

// add returns d + o, exactly.
func (d decimal) add(o decimal) decimal {
	if d.e < o.e {
		d, o = o, d
	}
	scale := new(big.Int).Exp(bigTen, big.NewInt(int64(d.e-o.e)), nil)
	m := new(big.Int).Mul(d.m, scale)
	return normal(m.Add(m, o.m), o.e)
}

// String writes d in plain decimal notation.
func (d decimal) String() string {
	digits := new(big.Int).Abs(d.m).String()
	sign := ""
	if d.m.Sign() < 0 {
		sign = "-"
	}
	switch point := len(digits) + d.e; {
	case d.e >= 0:
		return sign + digits + strings.Repeat("0", d.e)
	case point > 0:
		return sign + digits[:point] + "." + digits[point:]
	default:
		return sign + "0." + strings.Repeat("0", -point) + digits
	}
}

// storable checks that DynamoDB can keep d: 38 significant digits at most,
// and a magnitude from 1E-130 to below 1E+126.
func (d decimal) storable() *apiError {
	if d.m.Sign() == 0 {
		return nil
	}
	n := len(new(big.Int).Abs(d.m).String())
	switch lead := d.e + n - 1; {
	case n > 38:
		return validation("Attempting to store more than 38 significant digits in a Number")
	case lead >= 126:
		return validation("Number overflow. Attempting to store a number with magnitude larger than supported range")
	case lead < -130:
		return validation("Number underflow. Attempting to store a number with magnitude smaller than supported range")
	}
	return nil
}
