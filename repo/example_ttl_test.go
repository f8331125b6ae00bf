package repo_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// Session is the item type of the TTL examples: DynamoDB deletes a session
// once Expires has passed, if the table has TTL on (see Repo.EnableTTL).
type Session struct {
	ID      string                  `dynamodbav:"id" repo:"hash"`
	Token   field.Encrypted[string] `dynamodbav:"token" enc:"pii"`
	Expires time.Time               `dynamodbav:"expires" repo:"ttl"`
}

// The ttl field is stored as a number of Unix seconds, which DynamoDB's TTL
// reads. DynamoDB deletes expired items only within days; until then,
// SkipExpired treats them as gone, without opening them. (The table here is
// in memory and the KMS key too.)
func ExampleSkipExpired() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	sessions, err := repo.New[Session]("sessions", repo.WithRegistry(reg),
		repo.WithClient(newTrapDB("sessions", "id")), repo.WithEncryptor(enc.New(enctest.New())))
	if err != nil {
		log.Fatal(err)
	}
	old := Session{ID: "S#1", Token: field.NewEncrypted("abc"), Expires: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := sessions.Put(ctx, old); err != nil {
		log.Fatal(err)
	}
	av, _ := sessions.Marshal(ctx, Session{ID: "S#1", Expires: old.Expires})
	fmt.Println("expires is stored as", av["expires"].(*types.AttributeValueMemberN).Value)

	_, err = sessions.Get(ctx, repo.Key{Hash: "S#1"}, repo.SkipExpired())
	fmt.Println("with SkipExpired:", errors.Is(err, repo.ErrNotFound), sessions.Encryptor().Stats().DecryptCalls, "Decrypt")
	s, _ := sessions.Get(ctx, repo.Key{Hash: "S#1"})
	fmt.Println("without:", s.Expires.UTC())
	// Output:
	// expires is stored as 1577836800
	// with SkipExpired: true 0 Decrypt
	// without: 2020-01-01 00:00:00 +0000 UTC
}

// Turn on DynamoDB's TTL for the attribute of the ttl field, e.g. in a
// tool that sets up a local table. Production tables usually get it from
// their infrastructure code instead.
func ExampleRepo_EnableTTL() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/my-app-key"})
	sessions, err := repo.New[Session]("sessions", repo.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
	if err := sessions.CreateTable(ctx); err != nil {
		log.Fatal(err)
	}
	if err := sessions.EnableTTL(ctx); err != nil { // not an error when already on
		log.Fatal(err)
	}
}
