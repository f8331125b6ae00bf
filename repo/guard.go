package repo

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
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
		leaf := typeAtSteps(reflect.TypeFor[T](), steps)
		if leaf == nil || !containsCells(leaf, map[reflect.Type]bool{}) {
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

// typeAtSteps returns the Go type of t that a document path reaches, or nil
// when the path leaves the static types (an interface, an unknown name, an
// index into something that is not a list). A path into an encrypted value
// stops at it.
func typeAtSteps(t reflect.Type, steps []pathStep) reflect.Type {
	for _, s := range steps {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if isCell(t) {
			return t
		}
		switch {
		case s.index:
			if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
				return nil
			}
			t = t.Elem()
		case t.Kind() == reflect.Struct:
			f, ok := fieldsByName(t)[s.name]
			if !ok {
				return nil
			}
			t = f.typ
		case t.Kind() == reflect.Map:
			t = t.Elem()
		default:
			return nil
		}
	}
	return t
}

// typeAtPath is typeAtSteps for a path written as text.
func typeAtPath(t reflect.Type, path string) reflect.Type {
	return typeAtSteps(t, parsePath(path))
}
