// Package kmsx gives enc its data keys from AWS KMS.
package kmsx

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/dynoseal/dynoseal/enc"
)

// API is the part of *kms.Client the provider uses.
type API interface {
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

// Options configure a [Provider].
type Options struct {
	// LoadOptions are passed to config.LoadDefaultConfig when the provider
	// loads the default configuration (New only).
	LoadOptions []func(*config.LoadOptions) error
	// ClientOptions are applied to every KMS client the provider creates,
	// e.g. to add middleware or change retries.
	ClientOptions []func(*kms.Options)
	// Clients are used as they are for their region ("" for the default
	// region) instead of clients the provider would create.
	Clients map[string]API
}

// Option changes [Options].
type Option func(*Options)

// WithLoadOptions adds options for config.LoadDefaultConfig.
func WithLoadOptions(fns ...func(*config.LoadOptions) error) Option {
	return func(o *Options) { o.LoadOptions = append(o.LoadOptions, fns...) }
}

// WithClientOptions adds options applied to every KMS client the provider creates.
func WithClientOptions(fns ...func(*kms.Options)) Option {
	return func(o *Options) { o.ClientOptions = append(o.ClientOptions, fns...) }
}

// WithClient makes the provider use c for region ("" for specs without a region).
func WithClient(region string, c API) Option {
	return func(o *Options) {
		if o.Clients == nil {
			o.Clients = map[string]API{}
		}
		o.Clients[region] = c
	}
}

// Provider implements enc.KeyProvider over AWS KMS. It creates one client per
// region on first use and is safe for concurrent use.
type Provider struct {
	opts Options

	mu      sync.Mutex
	cfg     *aws.Config   // nil until loaded; a failed load is tried again on the next call
	loading chan struct{} // closed when the load under way ends; nil when none is
	clients map[string]API
	aliases aliases
}

var _ enc.KeyProvider = (*Provider)(nil)

// New returns a provider that loads the default AWS configuration (credentials,
// region, AWS_ENDPOINT_URL_KMS, ...) lazily, on its first KMS call.
func New(opts ...Option) *Provider {
	p := &Provider{clients: map[string]API{}, aliases: aliases{lock: make(chan struct{}, 1), targets: map[[2]string]aliasTarget{}}}
	for _, opt := range opts {
		opt(&p.opts)
	}
	for region, c := range p.opts.Clients {
		p.clients[region] = c
	}
	return p
}

// NewFromConfig returns a provider whose clients are made from cfg.
func NewFromConfig(cfg aws.Config, opts ...Option) *Provider {
	p := New(opts...)
	p.cfg = &cfg
	return p
}

func (p *Provider) client(ctx context.Context, region string) (API, error) {
	p.mu.Lock()
	c, ok := p.clients[region]
	p.mu.Unlock()
	if ok {
		return c, nil
	}
	cfg, err := p.config(ctx)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[region]; ok {
		return c, nil
	}
	fns := slices.Clone(p.opts.ClientOptions)
	if region != "" {
		// Last, so that no client option sends a spec to another region.
		fns = append(fns, func(o *kms.Options) { o.Region = region })
	}
	c = kms.NewFromConfig(cfg, fns...)
	p.clients[region] = c
	return c, nil
}

// config loads the default AWS configuration once. Loads run one at a time
// and outside the lock, so a slow one (an instance-metadata lookup, say)
// holds up only callers that need it, each for no longer than its context
// allows. A failed load is not kept: the next call tries again.
func (p *Provider) config(ctx context.Context) (aws.Config, error) {
	for {
		p.mu.Lock()
		if p.cfg != nil {
			cfg := *p.cfg
			p.mu.Unlock()
			return cfg, nil
		}
		if wait := p.loading; wait != nil {
			p.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return aws.Config{}, fmt.Errorf("load AWS config: %w", ctx.Err())
			}
		}
		done := make(chan struct{})
		p.loading = done
		p.mu.Unlock()

		cfg, err := config.LoadDefaultConfig(ctx, p.opts.LoadOptions...)
		p.mu.Lock()
		if err == nil {
			p.cfg = &cfg
		}
		p.loading = nil
		p.mu.Unlock()
		close(done)
		if err != nil {
			return aws.Config{}, fmt.Errorf("load AWS config: %w", err)
		}
		return cfg, nil
	}
}

// GenerateDataKey asks KMS for a new AES-256 data key.
func (p *Provider) GenerateDataKey(ctx context.Context, key enc.KeyRef) ([]byte, []byte, error) {
	c, err := p.client(ctx, key.Region)
	if err != nil {
		return nil, nil, err
	}
	out, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             aws.String(key.KeyID),
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: key.Context,
	})
	if err != nil {
		return nil, nil, classify(err)
	}
	return out.Plaintext, out.CiphertextBlob, nil
}

// DecryptDataKey asks KMS to decrypt an encrypted data key. It names the
// spec's key so a ciphertext made under another key is refused.
func (p *Provider) DecryptDataKey(ctx context.Context, key enc.KeyRef, encrypted []byte) ([]byte, error) {
	c, err := p.client(ctx, key.Region)
	if err != nil {
		return nil, err
	}
	out, err := c.Decrypt(ctx, &kms.DecryptInput{
		KeyId:             aws.String(key.KeyID),
		CiphertextBlob:    encrypted,
		EncryptionContext: key.Context,
	})
	if err != nil {
		return nil, classify(err)
	}
	return out.Plaintext, nil
}

// classify wraps a KMS error with the enc sentinel for its documented error
// code, keeping the SDK error reachable with errors.As.
func classify(err error) error {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return err
	}
	var sentinel error
	switch apiErr.ErrorCode() {
	case "NotFoundException":
		sentinel = enc.ErrKeyNotFound
	case "AccessDeniedException", "AccessDenied":
		sentinel = enc.ErrAccessDenied
	case "DisabledException", "KMSInvalidStateException":
		sentinel = enc.ErrKeyDisabled
	case "InvalidCiphertextException", "IncorrectKeyException":
		sentinel = enc.ErrInvalidCiphertext
	case "ThrottlingException", "Throttling", "TooManyRequestsException":
		sentinel = enc.ErrThrottled
	default:
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}
