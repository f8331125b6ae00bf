// Package localstack gives dynotest a LocalStack container, started with
// testcontainers-go, for machines with Docker and neither moto nor dynalite.
//
// It lives in the tests module, not in the dynotest kit, so that the kit
// does not pull in testcontainers-go (which needs a newer Go and some sixty
// more modules).
package localstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/testcontainers/testcontainers-go"
	tclocalstack "github.com/testcontainers/testcontainers-go/modules/localstack"

	"github.com/dynoseal/dynoseal/dynotest"
)

// Image is the container image started.
const Image = "localstack/localstack:4.4.0"

var (
	once sync.Once
	url  string
	err  error
)

// New returns dynotest.New(tb) when AWS_ENDPOINT_URL_DYNAMODB and
// AWS_ENDPOINT_URL_KMS are set; otherwise an Env over one LocalStack
// container per test binary (removed by testcontainers' reaper when the
// binary exits). Without Docker it skips tb, or fails it when
// DYNOTEST_REQUIRE=1.
func New(tb testing.TB) *dynotest.Env {
	tb.Helper()
	if os.Getenv(dynotest.EnvDynamoDBEndpoint) != "" || os.Getenv(dynotest.EnvKMSEndpoint) != "" {
		return dynotest.New(tb)
	}
	once.Do(func() { url, err = run(context.Background()) })
	if err != nil {
		msg := fmt.Sprintf("localstack: %v. Start Docker, or set %s and %s to running services.",
			err, dynotest.EnvDynamoDBEndpoint, dynotest.EnvKMSEndpoint)
		if os.Getenv(dynotest.EnvRequire) == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg + " Set " + dynotest.EnvRequire + "=1 to fail instead of skipping.")
	}
	return dynotest.Connect(tb, url, url, "localstack")
}

// run starts the container and returns its endpoint.
func run(ctx context.Context) (string, error) {
	if err := dockerHealthy(ctx); err != nil {
		return "", err
	}
	c, err := tclocalstack.Run(ctx, Image)
	if err != nil {
		return "", fmt.Errorf("start %s: %w", Image, err)
	}
	endpoint, err := c.PortEndpoint(ctx, "4566/tcp", "http")
	if err != nil {
		return "", fmt.Errorf("endpoint of %s: %w", Image, err)
	}
	return endpoint, nil
}

// dockerHealthy reports why testcontainers cannot run a container; its
// provider panics on some machines without Docker.
func dockerHealthy(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("no Docker: %v", r)
		}
	}()
	provider, err := testcontainers.ProviderDefault.GetProvider()
	if err != nil {
		return fmt.Errorf("no Docker: %w", err)
	}
	defer func() { err = errors.Join(err, provider.Close()) }()
	if err := provider.Health(ctx); err != nil {
		return fmt.Errorf("no Docker: %w", err)
	}
	return nil
}
