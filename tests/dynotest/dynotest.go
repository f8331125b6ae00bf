// Package dynotest gives integration tests local DynamoDB and KMS, with keys and tables that clean up after each test.
//
// Endpoints come from AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_KMS when
// both are set (the repository's `make test` starts moto, or dynalite and
// local-kms, and sets them). Otherwise a LocalStack container is started with
// testcontainers-go, once per test binary; without Docker the test is skipped
// with the reason.
package dynotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/modules/localstack"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/kmsx"
	"github.com/dynoseal/dynoseal/repo"
)

// LocalStackImage is the container image used when no endpoints are set.
const LocalStackImage = "localstack/localstack:4.4.0"

// Env is a ready AWS configuration with DynamoDB and KMS clients.
type Env struct {
	Config   aws.Config
	DynamoDB *dynamodb.Client
	KMS      *kms.Client
	// Backend names the services: DYNOSEAL_BACKEND when set ("moto",
	// "strict"), "env" for other endpoints from the environment, or
	// "localstack".
	Backend string
}

var (
	containerOnce sync.Once
	containerURL  string
	containerErr  error
)

// New returns an Env, or skips t when no local services can be had.
func New(t *testing.T) *Env {
	t.Helper()
	ctx := context.Background()
	if os.Getenv("AWS_ENDPOINT_URL_DYNAMODB") != "" && os.Getenv("AWS_ENDPOINT_URL_KMS") != "" {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			t.Fatalf("dynotest: load AWS config: %v", err)
		}
		if cfg.Region == "" {
			cfg.Region = "us-east-1"
		}
		backend := os.Getenv("DYNOSEAL_BACKEND")
		if backend == "" {
			backend = "env"
		}
		return newEnv(cfg, backend)
	}
	testcontainers.SkipIfProviderIsNotHealthy(t)
	containerOnce.Do(func() {
		c, err := localstack.Run(ctx, LocalStackImage)
		if err != nil {
			containerErr = err
			return
		}
		containerURL, containerErr = c.PortEndpoint(ctx, "4566/tcp", "http")
	})
	if containerErr != nil {
		t.Skipf("dynotest: no AWS_ENDPOINT_URL_DYNAMODB/KMS set and LocalStack did not start: %v", containerErr)
	}
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithBaseEndpoint(containerURL),
	)
	if err != nil {
		t.Fatalf("dynotest: load AWS config: %v", err)
	}
	return newEnv(cfg, "localstack")
}

func newEnv(cfg aws.Config, backend string) *Env {
	return &Env{Config: cfg, DynamoDB: dynamodb.NewFromConfig(cfg), KMS: kms.NewFromConfig(cfg), Backend: backend}
}

// Encryptor returns an encryptor over this Env's KMS.
func (e *Env) Encryptor(opts ...kmsx.Option) *enc.Encryptor {
	return enc.New(kmsx.NewFromConfig(e.Config, opts...))
}

// Key creates a symmetric KMS key with a unique alias and returns the key ID
// and the alias. Cleanup deletes the alias and schedules the key's deletion.
func (e *Env) Key(t *testing.T) (keyID, alias string) {
	t.Helper()
	ctx := context.Background()
	out, err := e.KMS.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("dynotest " + t.Name())})
	if err != nil {
		t.Fatalf("dynotest: create KMS key: %v", err)
	}
	keyID = aws.ToString(out.KeyMetadata.KeyId)
	alias = "alias/" + UniqueName(t, "key")
	if _, err := e.KMS.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: aws.String(keyID)}); err != nil {
		t.Fatalf("dynotest: create alias: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if _, err := e.KMS.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(alias)}); err != nil {
			t.Logf("dynotest: delete alias %s: %v", alias, err)
		}
		if _, err := e.KMS.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID), PendingWindowInDays: aws.Int32(7)}); err != nil {
			t.Logf("dynotest: schedule deletion of key %s: %v", keyID, err)
		}
	})
	return keyID, alias
}

// Table creates a uniquely named table for T's key schema and returns its
// repository, using this Env's DynamoDB client and, unless opts say
// otherwise, an encryptor over this Env's KMS. Cleanup deletes the table.
func Table[T any](t *testing.T, e *Env, opts ...repo.Option) *repo.Repo[T] {
	t.Helper()
	return TableWith[T](t, e, nil, opts...)
}

// TableWith is Table with a change to the CreateTable request, e.g. to add
// secondary indexes.
func TableWith[T any](t *testing.T, e *Env, change func(*dynamodb.CreateTableInput), opts ...repo.Option) *repo.Repo[T] {
	t.Helper()
	name := UniqueName(t, "tbl")
	base := []repo.Option{repo.WithClient(e.DynamoDB), repo.WithEncryptor(e.Encryptor())}
	r, err := repo.New[T](name, append(base, opts...)...)
	if err != nil {
		t.Fatalf("dynotest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var fns []func(*dynamodb.CreateTableInput)
	if change != nil {
		fns = append(fns, change)
	}
	if err := r.CreateTable(ctx, fns...); err != nil {
		t.Fatalf("dynotest: %v", err)
	}
	t.Cleanup(func() {
		_, err := e.DynamoDB.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
		if err != nil && !isNotFound(err) {
			t.Logf("dynotest: delete table %s: %v", name, err)
		}
	})
	return r
}

func isNotFound(err error) bool {
	var nf interface{ ErrorCode() string }
	return errors.As(err, &nf) && nf.ErrorCode() == "ResourceNotFoundException"
}

var unsafe = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// UniqueName returns a name valid for tables and aliases, derived from the
// test's name and made unique with random bytes.
func UniqueName(t *testing.T, prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := unsafe.ReplaceAllString(t.Name(), "-")
	name = strings.Trim(name, "-")
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("%s-%s-%s", prefix, name, hex.EncodeToString(b))
}
