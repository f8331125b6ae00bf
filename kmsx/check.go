package kmsx

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/dynoseal/dynoseal/enc"
)

var _ enc.KeyChecker = (*Provider)(nil)

// CheckKey asks KMS (kms:DescribeKey) whether the key exists and is
// enabled, for enc.Encryptor.Check of a spec that only opens values.
func (p *Provider) CheckKey(ctx context.Context, key enc.KeyRef) error {
	c, err := p.client(ctx, key.Region)
	if err != nil {
		return err
	}
	dc, ok := c.(describeAPI)
	if !ok {
		return fmt.Errorf("kmsx: the KMS client for region %q has no DescribeKey: %w", key.Region, errors.ErrUnsupported)
	}
	out, err := dc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(key.KeyID)})
	if err != nil {
		return classify(err)
	}
	if m := out.KeyMetadata; m == nil || m.KeyState != types.KeyStateEnabled {
		state := types.KeyState("unknown")
		if m != nil {
			state = m.KeyState
		}
		return fmt.Errorf("%w: key %s is %s", enc.ErrKeyDisabled, key.KeyID, state)
	}
	return nil
}
