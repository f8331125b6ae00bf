package repo

import "fmt"

// indexRole records a secondary-index role of f's `repo` tag.
func (c *planner) indexRole(f *attr, role string) error {
	return fmt.Errorf("repo: field %s: unknown role %q in `repo` tag", f.goName, role)
}
