package repo

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrEncryptedComparison is returned when a condition, filter or key
// condition compares the value of an encrypted attribute. Sealed values are
// randomised, so such a comparison can never match what the caller meant;
// only attribute_exists and attribute_not_exists may name them.
var ErrEncryptedComparison = errors.New("dynoseal: expression compares an encrypted attribute")

var placeholder = regexp.MustCompile(`#[A-Za-z0-9_]+`)

var existence = regexp.MustCompile(`attribute_(not_)?exists\s*\(\s*$`)

// checkExpression rejects an expression that uses an encrypted attribute in
// anything but an existence check. names maps placeholders to attribute
// names, as expression.Expression.Names returns them.
func (r *Repo[T]) checkExpression(kind string, expr *string, names map[string]string) error {
	if expr == nil || *expr == "" {
		return nil
	}
	text := *expr
	for _, loc := range placeholder.FindAllStringIndex(text, -1) {
		ph := text[loc[0]:loc[1]]
		attr, ok := names[ph]
		if !ok || !r.holdsEncrypted(attr) {
			continue
		}
		before, after := text[:loc[0]], text[loc[1]:]
		// Only top-level names are checked: a name after '.' is a nested one.
		if strings.HasSuffix(before, ".") {
			continue
		}
		// A path into a document that holds encrypted fields deeper down
		// compares a plain member of it.
		if !r.holdsEncryptedDirectly(attr) && (strings.HasPrefix(after, ".") || strings.HasPrefix(after, "[")) {
			continue
		}
		if existence.MatchString(before) && strings.HasPrefix(strings.TrimLeft(after, " \t\n"), ")") {
			continue
		}
		return fmt.Errorf("repo %s: %s: attribute %q is encrypted; only attribute_exists and attribute_not_exists may name it: %w", r.table, kind, attr, ErrEncryptedComparison)
	}
	return nil
}
