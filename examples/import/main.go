// Import loads 500 customers with encrypted card numbers in one BatchPut,
// reads some back with BatchGet, closes some with BatchDelete, and prints
// what each step cost in KMS calls.
//
// It needs DynamoDB and KMS endpoints and credentials from the standard AWS
// configuration; run it against local ones with
//
//	scripts/with-services.sh moto -- go run ./examples/import
//
// It creates its own KMS key, alias and table, and deletes the table at the end.
package main

import (
	"context"
	"fmt"
	"log"
	"strings"
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
	Shop  string                  `dynamodbav:"shop" repo:"hash"`
	ID    int                     `dynamodbav:"id" repo:"range"`
	Name  string                  `dynamodbav:"name"`
	Email string                  `dynamodbav:"email"`
	Card  field.Encrypted[string] `dynamodbav:"card" enc:"payments"`
	CVV   field.Encrypted[string] `dynamodbav:"cvv" enc:"payments"`
}

const customers = 500

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
	suffix := time.Now().UnixNano()
	alias := fmt.Sprintf("alias/import-%d", suffix)
	if err := createKey(ctx, kms.NewFromConfig(cfg), alias); err != nil {
		return err
	}
	reg := enc.NewRegistry()
	reg.MustRegister("payments", enc.Spec{KeyID: alias, Context: map[string]string{"purpose": "card-import"}})

	db := dynamodb.NewFromConfig(cfg)
	table := fmt.Sprintf("customers-%d", suffix)
	shop, err := repo.New[Customer](table, repo.WithClient(db), repo.WithRegistry(reg), repo.WithBatchConcurrency(8))
	if err != nil {
		return err
	}
	if err := shop.CreateTable(ctx); err != nil {
		return err
	}
	defer func() {
		if _, err := db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)}); err != nil {
			log.Printf("delete table %s: %v", table, err)
		}
	}()
	kmsCalls := kmsCounter(shop.Encryptor())

	// Import: 1,000 encrypted values, one data key, 20 requests of 25.
	start := time.Now()
	if err := shop.BatchPut(ctx, newCustomers(customers)); err != nil {
		return err
	}
	fmt.Printf("imported %d customers in %v; KMS: %s\n", customers, time.Since(start).Round(time.Millisecond), kmsCalls())

	raw, err := db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(table),
		Key: map[string]dbtypes.AttributeValue{
			"shop": &dbtypes.AttributeValueMemberS{Value: "web"},
			"id":   &dbtypes.AttributeValueMemberN{Value: "42"},
		},
	})
	if err != nil {
		return err
	}
	stored := raw.Item["card"].(*dbtypes.AttributeValueMemberS).Value
	fmt.Printf("stored card of customer 42: %s... (%d chars)\n", stored[:24], len(stored))

	// Read a few back, in the order asked; 9999 does not exist.
	ids := []int{42, 7, 311, 9999, 128}
	start = time.Now()
	found, err := shop.BatchGet(ctx, keys(ids...))
	if err != nil {
		return err
	}
	fmt.Printf("read %d of %d keys in %v; KMS: %s\n", len(found), len(ids), time.Since(start).Round(time.Millisecond), kmsCalls())
	for _, c := range found {
		card, err := c.Card.Value()
		if err != nil {
			return err
		}
		fmt.Printf("  %3d  %-14s  %s\n", c.ID, c.Name, mask(card))
	}

	// Read everything back: 5 requests of 100 keys, one Decrypt in all.
	start = time.Now()
	all, err := shop.BatchGet(ctx, keys(span(0, customers)...))
	if err != nil {
		return err
	}
	fmt.Printf("read all %d in %v; KMS: %s\n", len(all), time.Since(start).Round(time.Millisecond), kmsCalls())

	// Close the first 100 accounts.
	if err := shop.BatchDelete(ctx, keys(span(0, 100)...)); err != nil {
		return err
	}
	left, err := shop.BatchGet(ctx, keys(span(0, customers)...))
	if err != nil {
		return err
	}
	fmt.Printf("deleted 100; %d customers left; KMS: %s\n", len(left), kmsCalls())
	st := shop.Encryptor().Stats()
	fmt.Printf("KMS in all: %d GenerateDataKey, %d Decrypt, %v waiting\n", st.GenerateDataKeyCalls, st.DecryptCalls, st.KMSTime.Round(time.Millisecond))
	return nil
}

func newCustomers(n int) []Customer {
	out := make([]Customer, n)
	for i := range out {
		out[i] = Customer{
			Shop:  "web",
			ID:    i,
			Name:  fmt.Sprintf("Customer %03d", i),
			Email: fmt.Sprintf("customer%03d@example.com", i),
			Card:  field.NewEncrypted(fmt.Sprintf("4000 0012 %04d %04d", i/100, 1000+i)),
			CVV:   field.NewEncrypted(fmt.Sprintf("%03d", (i*7)%1000)),
		}
	}
	return out
}

func keys(ids ...int) []repo.Key {
	out := make([]repo.Key, len(ids))
	for i, id := range ids {
		out[i] = repo.Key{Hash: "web", Range: id}
	}
	return out
}

func span(from, to int) []int {
	out := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func mask(card string) string {
	return strings.Repeat("*", len(card)-4) + card[len(card)-4:]
}

// kmsCounter reports the KMS calls made since the previous report.
func kmsCounter(e *enc.Encryptor) func() string {
	var last enc.Stats
	return func() string {
		now := e.Stats()
		s := fmt.Sprintf("%d GenerateDataKey, %d Decrypt", now.GenerateDataKeyCalls-last.GenerateDataKeyCalls, now.DecryptCalls-last.DecryptCalls)
		last = now
		return s
	}
}

func createKey(ctx context.Context, c *kms.Client, alias string) error {
	key, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("dynoseal import example")})
	if err != nil {
		return fmt.Errorf("create KMS key: %w", err)
	}
	_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: key.KeyMetadata.KeyId})
	if err != nil {
		return fmt.Errorf("create alias: %w", err)
	}
	return nil
}
