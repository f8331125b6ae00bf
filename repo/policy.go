package repo

import (
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/internal/attrkind"
)

// unsealed is the error of a value found not sealed under a spec that
// requires it. It names the kind of attribute found, never its content.
func unsealed(spec enc.Spec, path string, av types.AttributeValue) error {
	found := "a " + attrkind.Of(av)
	if _, ok := av.(*types.AttributeValueMemberS); ok {
		found = "a string that is not sealed"
	}
	return enc.OpenRequest{Spec: spec, Attribute: path}.Fail(fmt.Errorf("%w: found %s", enc.ErrUnsealed, found))
}

// checkSealed returns the error of the first value of m that a spec with
// RequireSealed requires sealed and that is not (a plaintext, another type,
// NULL); nil when every such value is sealed or absent.
func (p *plan) checkSealed(m attrMap) error {
	if !p.requireSealed {
		return nil
	}
	var first error
	p.rawValues(m, func(v rawValue) {
		if first == nil && v.cell.spec.RequireSealed && !sealedForm(v.av) {
			first = unsealed(v.cell.spec, v.path, v.av)
		}
	})
	return first
}
