package kmsx

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/dynoseal/dynoseal/enc"
)

// macAPI is the call beacons use. It is not part of API for the reason
// reEncryptAPI is not: an API of one's own written before beacons keeps
// compiling, and only beacons fail on it.
type macAPI interface {
	GenerateMac(ctx context.Context, in *kms.GenerateMacInput, optFns ...func(*kms.Options)) (*kms.GenerateMacOutput, error)
}

var _ enc.MacGenerator = (*Provider)(nil)

// GenerateMac implements enc.MacGenerator with KMS GenerateMac and
// MacAlgorithm HMAC_SHA_256, which needs kms:GenerateMac on an HMAC_256 key
// (key usage GENERATE_VERIFY_MAC) in the key's region. key.Context is not
// sent: KMS takes no encryption context for MACs.
func (p *Provider) GenerateMac(ctx context.Context, key enc.KeyRef, message []byte) ([]byte, error) {
	c, err := p.client(ctx, key.Region)
	if err != nil {
		return nil, err
	}
	mc, ok := c.(macAPI)
	if !ok {
		return nil, fmt.Errorf("kmsx: the KMS client for region %q has no GenerateMac, needed for beacons: %w", key.Region, errors.ErrUnsupported)
	}
	out, err := mc.GenerateMac(ctx, &kms.GenerateMacInput{
		KeyId:        aws.String(key.KeyID),
		MacAlgorithm: types.MacAlgorithmSpecHmacSha256,
		Message:      message,
	})
	if err != nil {
		return nil, classifyMac(err)
	}
	return out.Mac, nil
}

// classifyMac is classify with one more case: KMS answers a key that cannot
// make HMAC_SHA_256 MACs (most often the symmetric encryption key of a spec
// given as a beacon's key) with InvalidKeyUsageException, whose own message
// does not say what key was wanted.
func classifyMac(err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidKeyUsageException" {
		return fmt.Errorf("kmsx: the key must be an HMAC_256 key with key usage GENERATE_VERIFY_MAC to make MACs (a symmetric ENCRYPT_DECRYPT key cannot): %w", err)
	}
	return classify(err)
}
