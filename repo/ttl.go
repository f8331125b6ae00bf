package repo

import "fmt"

// checkTTL checks the field of `repo:"ttl"`.
func checkTTL(f *attr) error {
	return fmt.Errorf("repo: field %s: the `repo:\"ttl\"` role is not supported yet; remove the tag", f.goName)
}
