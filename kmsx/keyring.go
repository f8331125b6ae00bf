package kmsx

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/dynoseal/dynoseal/enc"
)

// The calls beyond API that specs with previous keys and Rewrap use. They
// are separate so that an API of one's own (a fake, a wrapper) written for
// GenerateDataKey and Decrypt keeps compiling; *kms.Client has them all.
type (
	reEncryptAPI interface {
		ReEncrypt(ctx context.Context, in *kms.ReEncryptInput, optFns ...func(*kms.Options)) (*kms.ReEncryptOutput, error)
	}
	describeAPI interface {
		DescribeKey(ctx context.Context, in *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error)
	}
)

var (
	_ enc.KeyRing     = (*Provider)(nil)
	_ enc.ReEncrypter = (*Provider)(nil)
)

// aliasAge is how long a learnt alias target is trusted before it is asked
// for again, so that a re-pointed alias is seen by a running process. A
// value whose key matches no allowed key also makes the aliases be asked
// for again at once.
const aliasAge = time.Minute

// aliases remembers which key ARN each alias named, per region.
type aliases struct {
	lock    chan struct{} // one DescribeKey at a time: it is rare, and waiters then find its answer
	mu      sync.Mutex
	targets map[[2]string]aliasTarget // {region, alias} -> target
}

type aliasTarget struct {
	arn string
	at  time.Time
}

func isAlias(id string) bool {
	return strings.HasPrefix(id, "alias/") || (strings.HasPrefix(id, "arn:") && strings.Contains(id, ":alias/"))
}

// DecryptDataKeyFrom implements enc.KeyRing. It calls KMS Decrypt without a
// KeyId, so KMS takes the key from the ciphertext, and accepts the result
// only when the key KMS names is key.KeyID or one of previous: a key ARN
// matches itself, a key ID the ARN that ends in key/<id>, and an alias the
// key that kms:DescribeKey says it names.
func (p *Provider) DecryptDataKeyFrom(ctx context.Context, key enc.KeyRef, previous []string, encrypted []byte) ([]byte, enc.KeyOrigin, error) {
	none := enc.KeyOrigin{Index: -1}
	c, err := p.client(ctx, key.Region)
	if err != nil {
		return nil, none, err
	}
	out, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: encrypted, EncryptionContext: key.Context})
	if err != nil {
		return nil, none, classify(err)
	}
	from, err := p.origin(ctx, c, key.Region, append([]string{key.KeyID}, previous...), aws.ToString(out.KeyId))
	if err != nil {
		clear(out.Plaintext)
		return nil, from, err
	}
	return out.Plaintext, from, nil
}

// ReEncryptDataKey implements enc.ReEncrypter with KMS ReEncrypt, which
// needs kms:ReEncryptFrom on the old key and kms:ReEncryptTo on the new.
// The source key is not named, as in DecryptDataKeyFrom; the data key is
// current when KMS reports the same key as source and destination.
func (p *Provider) ReEncryptDataKey(ctx context.Context, key enc.KeyRef, previous []string, encrypted []byte) ([]byte, enc.KeyOrigin, error) {
	none := enc.KeyOrigin{Index: -1}
	c, err := p.client(ctx, key.Region)
	if err != nil {
		return nil, none, err
	}
	rc, ok := c.(reEncryptAPI)
	if !ok {
		return nil, none, fmt.Errorf("kmsx: the KMS client for region %q has no ReEncrypt: %w", key.Region, errors.ErrUnsupported)
	}
	out, err := rc.ReEncrypt(ctx, &kms.ReEncryptInput{
		CiphertextBlob:               encrypted,
		DestinationKeyId:             aws.String(key.KeyID),
		SourceEncryptionContext:      key.Context,
		DestinationEncryptionContext: key.Context,
	})
	if err != nil {
		return nil, none, classify(err)
	}
	source := aws.ToString(out.SourceKeyId)
	if source != "" && source == aws.ToString(out.KeyId) {
		return out.CiphertextBlob, enc.KeyOrigin{Index: 0}, nil
	}
	from, err := p.origin(ctx, c, key.Region, previous, source)
	if err == nil {
		from.Index++
	}
	return out.CiphertextBlob, from, err
}

// origin returns the index in ids of the first that names the key arn.
// When none does, aliases are asked for again once before the key is
// refused, in case one was re-pointed since it was learnt.
func (p *Provider) origin(ctx context.Context, c API, region string, ids []string, arn string) (enc.KeyOrigin, error) {
	from := enc.KeyOrigin{Index: -1}
	for _, fresh := range []bool{false, true} {
		for i, id := range ids {
			ok, err := p.names(ctx, c, region, id, arn, fresh, &from.Lookups)
			if err != nil {
				return from, err
			}
			if ok {
				from.Index = i
				return from, nil
			}
		}
	}
	return from, fmt.Errorf("%w: KMS reports key %s", enc.ErrKeyNotAllowed, arn)
}

// names reports whether id names the key arn.
func (p *Provider) names(ctx context.Context, c API, region, id, arn string, fresh bool, lookups *int) (bool, error) {
	switch {
	case arn == "":
		return false, nil
	case isAlias(id):
		target, err := p.aliasTarget(ctx, c, region, id, fresh, lookups)
		return target == arn, err
	case strings.HasPrefix(id, "arn:"):
		return id == arn, nil
	}
	return strings.HasSuffix(arn, ":key/"+id), nil
}

// aliasTarget returns the ARN of the key an alias names, from memory when
// it was learnt less than aliasAge ago (and fresh is not set), else from
// kms:DescribeKey.
func (p *Provider) aliasTarget(ctx context.Context, c API, region, alias string, fresh bool, lookups *int) (string, error) {
	k := [2]string{region, alias}
	start := time.Now()
	if t, ok := p.aliases.get(k); ok && !fresh && start.Sub(t.at) < aliasAge {
		return t.arn, nil
	}
	return p.describeAlias(ctx, c, k, start, lookups)
}

// describeAlias asks KMS which key an alias names, unless another call
// learnt it since start.
func (p *Provider) describeAlias(ctx context.Context, c API, k [2]string, start time.Time, lookups *int) (string, error) {
	region, alias := k[0], k[1]
	select {
	case p.aliases.lock <- struct{}{}:
		defer func() { <-p.aliases.lock }()
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if t, ok := p.aliases.get(k); ok && !t.at.Before(start) {
		return t.arn, nil // learnt while this call waited
	}
	dc, ok := c.(describeAPI)
	if !ok {
		return "", fmt.Errorf("kmsx: the KMS client for region %q has no DescribeKey, needed for alias %s: %w", region, alias, errors.ErrUnsupported)
	}
	*lookups++
	out, err := dc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(alias)})
	if err != nil {
		return "", fmt.Errorf("describe %s: %w", alias, classify(err))
	}
	arn := aws.ToString(out.KeyMetadata.Arn)
	p.aliases.put(k, aliasTarget{arn: arn, at: time.Now()})
	return arn, nil
}

func (a *aliases) get(k [2]string) (aliasTarget, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.targets[k]
	return t, ok
}

func (a *aliases) put(k [2]string, t aliasTarget) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.targets[k] = t
}
