package repo

import "fmt"

// checkVersion checks the field of `repo:"version"`.
func checkVersion(f *attr) error {
	return fmt.Errorf("repo: field %s: the `repo:\"version\"` role is not supported yet; remove the tag", f.goName)
}
