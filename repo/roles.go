package repo

import (
	"fmt"
	"strings"
)

// role checks that f can take the role its `repo` tag gives it.
func (c *planner) role(f *attr, role string) error {
	if roles := strings.Split(f.tag.Get("repo"), ","); (role == "version" || role == "ttl") && len(roles) > 1 {
		return fmt.Errorf("repo: field %s: the %q role cannot be combined with another role (tag %q)", f.goName, role, f.tag.Get("repo"))
	}
	switch role {
	case "version":
		return checkVersion(f)
	case "ttl":
		return checkTTL(f)
	}
	if f.node != nil {
		return fmt.Errorf("repo: field %s: a key cannot be encrypted", f.goName)
	}
	f.plain = plainKey(f)
	return nil
}
