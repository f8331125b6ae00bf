package repo

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
)

// ErrEncryptedComparison is returned when a condition, filter or key
// condition compares the value of an encrypted attribute. Sealed values are
// randomised, so such a comparison can never match what the caller meant;
// only attribute_exists and attribute_not_exists may name them.
var ErrEncryptedComparison = errors.New("dynoseal: expression compares an encrypted attribute")

// operandPath matches a whole document path as the expression builder
// writes it: a name placeholder followed by members (.#b) and list
// indexes ([2]). Matching the whole path, not each placeholder, matters:
// the builder reuses a placeholder for a name wherever it occurs, so a name
// alone does not say where in T it sits.
var operandPath = regexp.MustCompile(`#[A-Za-z0-9_]+(?:\s*(?:\.\s*#[A-Za-z0-9_]+|\[\s*[0-9]+\s*\]))*`)

var pathPart = regexp.MustCompile(`#[A-Za-z0-9_]+|\[\s*[0-9]+\s*\]`)

var existence = regexp.MustCompile(`attribute_(not_)?exists\s*\(\s*$`)

// equalBefore and equalAfter match an equality around an operand: "x =
// #b" and "#b = x", but not <=, >= or <>.
var (
	equalBefore = regexp.MustCompile(`(^|[^<>])=\s*$`)
	equalAfter  = regexp.MustCompile(`^\s*=`)
)

// checkBeaconOperand refuses a beacon attribute used in anything but an
// equality or an existence check: beacons of different values are ordered
// at random, so any other comparison says nothing about the values.
func (r *Repo[T]) checkBeaconOperand(kind string, steps []pathStep, before, after string) error {
	if len(steps) == 0 || !r.plan.isBeacon(steps[0].name) {
		return nil
	}
	exists := existence.MatchString(before) && strings.HasPrefix(strings.TrimLeft(after, " \t\r\n"), ")")
	if len(steps) == 1 && (exists || equalBefore.MatchString(before) || equalAfter.MatchString(after)) {
		return nil
	}
	return fmt.Errorf("repo %s: %s: %q is a beacon of an encrypted attribute; it may only be compared for equality (MatchBeacon) or checked for existence: %w", r.table, kind, steps[0].name, ErrEncryptedComparison)
}

// checkExpression rejects an expression that uses an encrypted value, or a
// document or list holding one, in anything but an existence check. names
// maps placeholders to attribute names, as expression.Expression.Names
// returns them. Plain members of documents that also hold encrypted values
// may be used freely.
func (r *Repo[T]) checkExpression(kind string, expr *string, names map[string]string) error {
	if expr == nil || *expr == "" {
		return nil
	}
	text := *expr
	for _, loc := range operandPath.FindAllStringIndex(text, -1) {
		steps, shown := resolvePlaceholders(text[loc[0]:loc[1]], names)
		if err := r.checkBeaconOperand(kind, steps, text[:loc[0]], text[loc[1]:]); err != nil {
			return err
		}
		leaf := r.plan.typeAt(steps)
		if leaf == nil || !r.plan.holds[leaf] {
			continue
		}
		before, after := text[:loc[0]], text[loc[1]:]
		if existence.MatchString(before) && strings.HasPrefix(strings.TrimLeft(after, " \t\r\n"), ")") {
			continue
		}
		return fmt.Errorf("repo %s: %s: %q is or holds encrypted values; only attribute_exists and attribute_not_exists may name it: %w", r.table, kind, shown, ErrEncryptedComparison)
	}
	return nil
}

// resolvePlaceholders turns a path of placeholders into its steps and the
// path as the caller wrote it, for messages. A placeholder missing from
// names becomes a name no type has.
func resolvePlaceholders(path string, names map[string]string) ([]pathStep, string) {
	var steps []pathStep
	var shown strings.Builder
	for _, part := range pathPart.FindAllString(path, -1) {
		if part[0] == '[' {
			n := strings.TrimSpace(part[1 : len(part)-1])
			steps = append(steps, pathStep{index: true})
			shown.WriteString("[" + n + "]")
			continue
		}
		name, ok := names[part]
		if !ok {
			name = ""
		}
		steps = append(steps, pathStep{name: name})
		if shown.Len() > 0 {
			shown.WriteByte('.')
		}
		if ok {
			shown.WriteString(name)
		} else {
			shown.WriteString(part)
		}
	}
	return steps, shown.String()
}

// pathStep is one step of a document path: a member name, or a list index.
type pathStep struct {
	name  string
	index bool
}

// parsePath splits a document path written as text ("cards[0].number")
// into its steps.
func parsePath(path string) []pathStep {
	var steps []pathStep
	for part := range strings.SplitSeq(path, ".") {
		name, _, _ := strings.Cut(part, "[")
		steps = append(steps, pathStep{name: name})
		for range strings.Count(part, "[") {
			steps = append(steps, pathStep{index: true})
		}
	}
	return steps
}

// typeAt returns the Go type a document path reaches in T, or nil when the
// path leaves the static types (an interface, an unknown name, an index into
// something that is not a list). A path into an encrypted value stops at it.
func (p *plan) typeAt(steps []pathStep) reflect.Type {
	t, _ := p.walkPath(steps)
	return t
}

// walkPath is typeAt that also returns the first member name a struct on
// the path does not have (names are matched exactly, as DynamoDB does).
func (p *plan) walkPath(steps []pathStep) (reflect.Type, string) {
	t := p.typ
	for _, s := range steps {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if p.cells[t] {
			return t, ""
		}
		switch {
		case s.index && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
			t = t.Elem()
		case s.index:
			return nil, ""
		case t.Kind() == reflect.Struct:
			f, ok := p.fieldAt(t, s.name)
			if !ok {
				return nil, s.name
			}
			t = f.typ
		case t.Kind() == reflect.Map:
			t = t.Elem()
		default:
			return nil, ""
		}
	}
	return t, ""
}

// withProjection adds to b the projection of a read that asks for attrs, or
// nothing when attrs is empty. It is the one place projections are built.
//
// The projection grows by what opening the encrypted attributes among attrs
// takes: the item's key attributes for specs whose values are bound to their
// item (version 2), and the attributes that specs take context from. Left
// out, those values could not be opened. keys adds more attributes the
// caller needs (e.g. the table's key, to continue a page from an item).
func (r *Repo[T]) withProjection(b expression.Builder, attrs []string, keys []string) expression.Builder {
	if len(attrs) == 0 {
		return b
	}
	names := appendNew(nil, attrs...)
	for _, a := range attrs {
		top, _ := topName(a)
		names = appendNew(names, r.plan.needs[top]...)
	}
	names = appendNew(names, keys...)
	p := expression.NamesList(expression.Name(names[0]))
	for _, n := range names[1:] {
		p = p.AddNames(expression.Name(n))
	}
	return b.WithProjection(p)
}

// projectionOnly builds the projection of a read that has no other
// expression (Get, BatchGet), or nothing when attrs is empty.
func (r *Repo[T]) projectionOnly(op string, attrs []string, keys []string) (expr *string, names map[string]string, err error) {
	if len(attrs) == 0 {
		return nil, nil, nil
	}
	e, err := r.withProjection(expression.NewBuilder(), attrs, keys).Build()
	if err != nil {
		return nil, nil, fmt.Errorf("repo %s: %s: projection: %w", r.table, op, err)
	}
	return e.Projection(), e.Names(), nil
}

// topName returns the first attribute name of a document path
// ("profile" of "profile.ssn" and of "cards[0]") and whether it goes deeper.
func topName(path string) (string, bool) {
	if i := strings.IndexAny(path, ".["); i >= 0 {
		return path[:i], true
	}
	return path, false
}
