// Package dynotest gives integration tests a local DynamoDB and KMS, with
// keys and tables that are removed when each test ends.
//
// [New] finds the services in this order:
//
//  1. AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_KMS, when both are set:
//     services you run yourself (moto, LocalStack, DynamoDB Local, ...).
//  2. moto_server on PATH (or at DYNOTEST_MOTO_SERVER): started on a free
//     127.0.0.1 port; it serves DynamoDB and KMS.
//  3. dynalite on PATH (or at DYNOTEST_DYNALITE) together with the embedded
//     local-kms of package [github.com/dynoseal/dynoseal/dynotest/localkms],
//     which a test binary links in with a blank import.
//
// DYNOTEST_BACKEND=moto or DYNOTEST_BACKEND=strict picks one of 2 and 3; with
// endpoints from the environment it only names them (see [Env.Backend]).
//
// Without any of these the test is skipped with a message that says what to
// set; with DYNOTEST_REQUIRE=1 (for CI) it fails with the same message.
//
// Services that dynotest starts are stopped when the test that started them
// ends, or, when the test binary runs through [Main], started once and
// stopped when every test has run.
package dynotest

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/kmsx"
)

// Names of the environment variables dynotest reads.
const (
	EnvDynamoDBEndpoint = "AWS_ENDPOINT_URL_DYNAMODB"
	EnvKMSEndpoint      = "AWS_ENDPOINT_URL_KMS"
	EnvRequire          = "DYNOTEST_REQUIRE"     // "1": no services is a failure, not a skip
	EnvBackend          = "DYNOTEST_BACKEND"     // "moto" or "strict"; names env endpoints
	EnvMotoServer       = "DYNOTEST_MOTO_SERVER" // path of moto_server
	EnvDynalite         = "DYNOTEST_DYNALITE"    // path of dynalite (or its cli.js)
)

// Region is the region of the services dynotest starts, and the region used
// with endpoints from the environment when none is configured.
const Region = "us-east-1"

// Env is a ready AWS configuration with DynamoDB and KMS clients.
type Env struct {
	// Config reaches the services: clients made from it with
	// dynamodb.NewFromConfig or kms.NewFromConfig use the right endpoints.
	Config   aws.Config
	DynamoDB *dynamodb.Client
	KMS      *kms.Client
	// Backend names the services: "moto" or "strict" (dynalite and
	// local-kms) when dynotest started them; with endpoints from the
	// environment, DYNOTEST_BACKEND when set, else "env".
	Backend string
	// DynamoDBEndpoint and KMSEndpoint are the services' base URLs.
	DynamoDBEndpoint, KMSEndpoint string
}

// New returns an Env for tb. It skips tb when no services can be had, or
// fails it when DYNOTEST_REQUIRE=1.
func New(tb testing.TB) *Env {
	tb.Helper()
	ep, err := endpointsFor(tb)
	if err != nil {
		unavailable(tb, err)
		return nil
	}
	env, err := newEnv(context.Background(), ep)
	if err != nil {
		tb.Fatalf("dynotest: %v", err)
	}
	return env
}

// Connect returns an Env over DynamoDB and KMS already running at these base
// URLs (for example a container a test started), with test credentials and
// region us-east-1; the environment's AWS settings are not read. backend is
// the name Env.Backend reports.
func Connect(tb testing.TB, dynamodbURL, kmsURL, backend string) *Env {
	tb.Helper()
	env, err := newEnv(context.Background(), endpoints{dynamodb: dynamodbURL, kms: kmsURL, backend: backend})
	if err != nil {
		tb.Fatalf("dynotest: %v", err)
	}
	return env
}

// newEnv loads the AWS configuration for ep.
func newEnv(ctx context.Context, ep endpoints) (*Env, error) {
	cfg, err := loadConfig(ctx, ep)
	if err != nil {
		return nil, err
	}
	return &Env{
		Config: cfg,
		DynamoDB: dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
			o.BaseEndpoint = aws.String(ep.dynamodb)
		}),
		KMS:              kms.NewFromConfig(cfg, func(o *kms.Options) { o.BaseEndpoint = aws.String(ep.kms) }),
		Backend:          ep.backend,
		DynamoDBEndpoint: ep.dynamodb,
		KMSEndpoint:      ep.kms,
	}, nil
}

// loadConfig reads the environment's AWS configuration for endpoints from
// the environment, and builds one that ignores it for started services.
func loadConfig(ctx context.Context, ep endpoints) (aws.Config, error) {
	testCreds := credentials.NewStaticCredentialsProvider("test", "test", "")
	if !ep.fromEnv {
		return aws.Config{
			Region:        Region,
			Credentials:   aws.NewCredentialsCache(testCreds),
			ConfigSources: []any{ep},
		}, nil
	}
	var opts []func(*config.LoadOptions) error
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" && os.Getenv("AWS_PROFILE") == "" {
		opts = append(opts, config.WithCredentialsProvider(testCreds))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = Region
	}
	return cfg, nil
}

// Encryptor returns an encryptor over this Env's KMS.
func (e *Env) Encryptor(opts ...kmsx.Option) *enc.Encryptor {
	endpoint := kmsx.WithClientOptions(func(o *kms.Options) { o.BaseEndpoint = aws.String(e.KMSEndpoint) })
	return enc.New(kmsx.NewFromConfig(e.Config, append([]kmsx.Option{endpoint}, opts...)...))
}
