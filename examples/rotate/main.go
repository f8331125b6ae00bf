// Rotate migrates a table whose SSNs are stored three ways (plaintext from
// before the field was encrypted, version 1 under an old key, version 2
// under the current key) to one form, with a live progress line, and then
// turns on the policies that keep it that way.
//
// It needs DynamoDB and KMS endpoints and credentials from the standard AWS
// configuration; `make rotate-demo` starts local ones.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

type Customer struct {
	PK   string                  `dynamodbav:"pk" repo:"hash"`
	Name string                  `dynamodbav:"name"`
	SSN  field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
}

const perKind = 200

func main() {
	if err := run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return err
	}
	keys := kms.NewFromConfig(cfg)
	oldKey, err := createKey(ctx, keys, "old")
	if err != nil {
		return err
	}
	newKey, err := createKey(ctx, keys, "new")
	if err != nil {
		return err
	}
	db := dynamodb.NewFromConfig(cfg)
	table := fmt.Sprintf("rotate-%d", time.Now().UnixNano())
	// Key ARNs, not aliases: an alias re-pointed to the new key would make
	// old values look sealed under the current key.
	before := enc.Spec{KeyID: oldKey}
	during := enc.Spec{KeyID: newKey, PreviousKeyIDs: []string{oldKey}, Version: enc.Version2}
	after := enc.Spec{KeyID: newKey, Version: enc.Version2, RequireSealed: true, MinVersion: enc.Version2}

	customers, err := repository(table, db, during)
	if err != nil {
		return err
	}
	if err := customers.CreateTable(ctx); err != nil {
		return err
	}
	defer func() { _ = customers.DeleteTable(context.Background()) }()
	if err := seed(ctx, db, table, before, during); err != nil {
		return err
	}

	st, err := customers.Migrate(ctx, repo.MigrateBatchSize(50), repo.MigrateProgress(func(s repo.MigrateStats) {
		fmt.Printf("\rmigrating: scanned %4d  changed %4d  skipped %4d  failed %d  KMS calls %3d", s.Scanned, s.Changed, s.Skipped, s.Failed, s.KMSCalls)
	}))
	fmt.Println()
	if err != nil {
		return err
	}
	again, err := customers.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("first run changed %d items; a second run changed %d\n", st.Changed, again.Changed)
	return enforce(ctx, db, table, after)
}

// enforce reads the table under a spec that knows only the new key and
// accepts only sealed version-2 values, then shows a plaintext planted in
// the table refused.
func enforce(ctx context.Context, db *dynamodb.Client, table string, after enc.Spec) error {
	strict, err := repository(table, db, after)
	if err != nil {
		return err
	}
	n := 0
	for _, err := range strict.Scan(ctx) {
		if err != nil {
			return err
		}
		n++
	}
	fmt.Printf("all %d items open with RequireSealed and MinVersion 2 and no previous key\n", n)
	if err := putPlain(ctx, db, table, "C#0000", "999-99-9999"); err != nil {
		return err
	}
	_, err = strict.Get(ctx, repo.Key{Hash: "C#0000"})
	if !errors.Is(err, enc.ErrUnsealed) {
		return fmt.Errorf("a planted plaintext loaded: %v", err)
	}
	fmt.Println("a plaintext planted in the table is refused:", err)
	return nil
}

func repository(table string, db *dynamodb.Client, spec enc.Spec) (*repo.Repo[Customer], error) {
	reg := enc.NewRegistry()
	if err := reg.Register("pii", spec); err != nil {
		return nil, err
	}
	return repo.New[Customer](table, repo.WithClient(db), repo.WithRegistry(reg))
}

// seed writes perKind customers each in plaintext, in version 1 under the
// old key, and in version 2 under the new key.
func seed(ctx context.Context, db *dynamodb.Client, table string, before, during enc.Spec) error {
	var v1, v2 []Customer
	for i := range 3 * perKind {
		pk, ssn := fmt.Sprintf("C#%04d", i), fmt.Sprintf("%03d-%02d-%04d", i%900+100, i%90+10, i)
		switch i % 3 {
		case 0:
			if err := putPlain(ctx, db, table, pk, ssn); err != nil {
				return err
			}
		case 1:
			v1 = append(v1, Customer{PK: pk, Name: "customer", SSN: field.NewEncrypted(ssn)})
		default:
			v2 = append(v2, Customer{PK: pk, Name: "customer", SSN: field.NewEncrypted(ssn)})
		}
	}
	for _, batch := range []struct {
		spec  enc.Spec
		items []Customer
	}{{before, v1}, {during, v2}} {
		r, err := repository(table, db, batch.spec)
		if err != nil {
			return err
		}
		if err := r.BatchPut(ctx, batch.items); err != nil {
			return err
		}
	}
	fmt.Printf("seeded %d plaintext, %d version-1 (old key) and %d version-2 (new key) customers\n", perKind, len(v1), len(v2))
	return nil
}

func putPlain(ctx context.Context, db *dynamodb.Client, table, pk, ssn string) error {
	_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]dbtypes.AttributeValue{
		"pk": &dbtypes.AttributeValueMemberS{Value: pk}, "name": &dbtypes.AttributeValueMemberS{Value: "customer"},
		"ssn": &dbtypes.AttributeValueMemberS{Value: ssn},
	}})
	return err
}

// createKey creates a KMS key and returns its ARN.
func createKey(ctx context.Context, c *kms.Client, what string) (string, error) {
	key, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("dynoseal rotate example, " + what + " key")})
	if err != nil {
		return "", fmt.Errorf("create KMS key: %w", err)
	}
	return aws.ToString(key.KeyMetadata.Arn), nil
}
