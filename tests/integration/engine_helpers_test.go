package integration

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/dynoseal/dynoseal/kmsx"
	"github.com/dynoseal/dynoseal/repo"
)

// engineRepoOn returns a repository of T on an existing table, with its own
// encryptor over the Env's KMS unless opts give one, and the fixture's
// registry. Several of them on one table play the services of one system.
func engineRepoOn[T any](t *testing.T, f *fixture, table string, opts ...repo.Option) *repo.Repo[T] {
	t.Helper()
	base := []repo.Option{repo.WithClient(f.env.DynamoDB), repo.WithEncryptor(f.env.Encryptor()), repo.WithRegistry(f.reg)}
	r, err := repo.New[T](table, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// engineRawOrNil reads an item with a plain GetItem; nil when there is none.
func (f *fixture) engineRawOrNil(t *testing.T, table string, key map[string]types.AttributeValue) map[string]types.AttributeValue {
	t.Helper()
	out, err := f.env.DynamoDB.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(table), Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatalf("raw GetItem: %v", err)
	}
	return out.Item
}

func enginePK(v string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": s(v)}
}

// engineQuickRetries makes the SDK retry three times without waiting, so a test
// sees the error that is left after the SDK's retries.
func engineQuickRetries(o *kms.Options) {
	o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = 3
		so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
		so.RateLimiter = ratelimit.None
	})
}

// engineInjectKMSError answers every attempt of the named KMS operations with an
// API error of the given code, as AWS would for a missing IAM permission or
// a throttled account; emulators cannot be made to. It sits in the
// deserialize step, inside the SDK's retry loop, so each retry meets it and
// attempts counts them. Other operations reach the emulator.
func engineInjectKMSError(code string, attempts *atomic.Int64, ops ...string) kmsx.Option {
	return kmsx.WithClientOptions(engineQuickRetries, func(o *kms.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("dynosealInjectKMSError",
				func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
					if slices.Contains(ops, awsmiddleware.GetOperationName(ctx)) {
						attempts.Add(1)
						return middleware.DeserializeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{Code: code, Message: "injected by the test", Fault: smithy.FaultClient}
					}
					return next.HandleDeserialize(ctx, in)
				}), middleware.Before)
		})
	})
}
