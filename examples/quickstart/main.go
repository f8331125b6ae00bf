// Quickstart saves a user with an encrypted SSN, shows what DynamoDB holds and reads it back.
//
// It needs DynamoDB and KMS endpoints and credentials from the standard AWS
// configuration; `make demo` starts local ones and sets AWS_ENDPOINT_URL_DYNAMODB
// and AWS_ENDPOINT_URL_KMS.
package main

import (
	"context"
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

type User struct {
	PK    string                  `dynamodbav:"pk" repo:"hash"`
	Email string                  `dynamodbav:"email"`
	SSN   field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
}

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
	alias := fmt.Sprintf("alias/quickstart-%d", time.Now().UnixNano())
	if err := createKey(ctx, kms.NewFromConfig(cfg), alias); err != nil {
		return err
	}
	enc.MustRegister("pii", enc.Spec{KeyID: alias})

	db := dynamodb.NewFromConfig(cfg)
	users, err := repo.New[User]("users", repo.WithClient(db))
	if err != nil {
		return err
	}
	if err := users.CreateTable(ctx); err != nil {
		return err
	}

	err = users.Put(ctx, User{PK: "USER#123", Email: "john@example.com", SSN: field.NewEncrypted("123-45-6789")})
	if err != nil {
		return err
	}

	raw, err := db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String("users"),
		Key:       map[string]dbtypes.AttributeValue{"pk": &dbtypes.AttributeValueMemberS{Value: "USER#123"}},
	})
	if err != nil {
		return err
	}
	stored := raw.Item["ssn"].(*dbtypes.AttributeValueMemberS).Value
	fmt.Println("stored ssn:   ", stored)

	u, err := users.Get(ctx, repo.Key{Hash: "USER#123"})
	if err != nil {
		return err
	}
	ssn, err := u.SSN.Value()
	if err != nil {
		return err
	}
	fmt.Println("decrypted ssn:", ssn)
	fmt.Printf("printed user:  %+v\n", u)
	fmt.Printf("KMS calls:     %+v\n", users.Encryptor().Stats())
	return nil
}

func createKey(ctx context.Context, c *kms.Client, alias string) error {
	key, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("dynoseal quickstart")})
	if err != nil {
		return fmt.Errorf("create KMS key: %w", err)
	}
	_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: key.KeyMetadata.KeyId})
	if err != nil {
		return fmt.Errorf("create alias: %w", err)
	}
	return nil
}
