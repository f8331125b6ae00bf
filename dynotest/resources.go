package dynotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/dynoseal/dynoseal/repo"
)

// Key creates a symmetric KMS key with a unique alias and returns the key ID
// and the alias. Cleanup deletes the alias and schedules the key's deletion.
func (e *Env) Key(tb testing.TB) (keyID, alias string) {
	tb.Helper()
	return e.newKey(tb, &kms.CreateKeyInput{Description: aws.String("dynotest " + tb.Name())})
}

// MacKey creates an HMAC KMS key (key spec HMAC_256, key usage
// GENERATE_VERIFY_MAC), the key an enc.Beacon names, with a unique alias and
// returns the key ID and the alias. Cleanup is as for Key.
func (e *Env) MacKey(tb testing.TB) (keyID, alias string) {
	tb.Helper()
	return e.newKey(tb, &kms.CreateKeyInput{
		Description: aws.String("dynotest HMAC " + tb.Name()),
		KeySpec:     types.KeySpecHmac256,
		KeyUsage:    types.KeyUsageTypeGenerateVerifyMac,
	})
}

// newKey creates the key that in describes, and an alias for it.
func (e *Env) newKey(tb testing.TB, in *kms.CreateKeyInput) (keyID, alias string) {
	tb.Helper()
	ctx := context.Background()
	out, err := e.KMS.CreateKey(ctx, in)
	if err != nil {
		tb.Fatalf("dynotest: create KMS key: %v", err)
	}
	keyID = aws.ToString(out.KeyMetadata.KeyId)
	alias = "alias/" + UniqueName(tb, "key")
	if _, err := e.KMS.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: aws.String(keyID)}); err != nil {
		tb.Fatalf("dynotest: create alias: %v", err)
	}
	tb.Cleanup(func() { e.dropKey(tb, keyID, alias) })
	return keyID, alias
}

func (e *Env) dropKey(tb testing.TB, keyID, alias string) {
	ctx := context.Background()
	if _, err := e.KMS.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(alias)}); err != nil {
		tb.Logf("dynotest: delete alias %s: %v", alias, err)
	}
	in := &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID), PendingWindowInDays: aws.Int32(7)}
	if _, err := e.KMS.ScheduleKeyDeletion(ctx, in); err != nil {
		tb.Logf("dynotest: schedule deletion of key %s: %v", keyID, err)
	}
}

// Table creates a uniquely named table for T's key schema and returns its
// repository, using this Env's DynamoDB client and, unless opts say
// otherwise, an encryptor over this Env's KMS. Cleanup deletes the table.
func Table[T any](tb testing.TB, e *Env, opts ...repo.Option) *repo.Repo[T] {
	tb.Helper()
	return TableWith[T](tb, e, nil, opts...)
}

// TableWith is Table with a change to the CreateTable request, e.g. to add
// secondary indexes.
func TableWith[T any](tb testing.TB, e *Env, change func(*dynamodb.CreateTableInput), opts ...repo.Option) *repo.Repo[T] {
	tb.Helper()
	name := UniqueName(tb, "tbl")
	base := []repo.Option{repo.WithClient(e.DynamoDB), repo.WithEncryptor(e.Encryptor())}
	r, err := repo.New[T](name, append(base, opts...)...)
	if err != nil {
		tb.Fatalf("dynotest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var fns []func(*dynamodb.CreateTableInput)
	if change != nil {
		fns = append(fns, change)
	}
	if err := r.CreateTable(ctx, fns...); err != nil {
		tb.Fatalf("dynotest: %v", err)
	}
	tb.Cleanup(func() { e.dropTable(tb, name) })
	return r
}

func (e *Env) dropTable(tb testing.TB, name string) {
	_, err := e.DynamoDB.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	if err != nil && !isNotFound(err) {
		tb.Logf("dynotest: delete table %s: %v", name, err)
	}
}

func isNotFound(err error) bool {
	var nf interface{ ErrorCode() string }
	return errors.As(err, &nf) && nf.ErrorCode() == "ResourceNotFoundException"
}

var unsafe = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// UniqueName returns a name valid for tables and aliases, derived from the
// test's name and made unique with random bytes.
func UniqueName(tb testing.TB, prefix string) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		tb.Fatalf("dynotest: random name: %v", err)
	}
	name := unsafe.ReplaceAllString(tb.Name(), "-")
	name = strings.Trim(name, "-")
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("%s-%s-%s", prefix, name, hex.EncodeToString(b))
}
