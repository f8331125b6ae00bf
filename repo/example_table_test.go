package repo_test

import (
	"context"
	"fmt"
	"log"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// Ticket declares its secondary indexes in its tags: a global index
// ByStatus on (status, created) and a local index ByCreated on (project,
// created).
type Ticket struct {
	Project string                  `dynamodbav:"project" repo:"hash"`
	Number  int                     `dynamodbav:"number" repo:"range"`
	Status  string                  `dynamodbav:"status" repo:"gsi:ByStatus:hash"`
	Created int64                   `dynamodbav:"created" repo:"gsi:ByStatus:range,lsi:ByCreated:range"`
	Title   string                  `dynamodbav:"title"`
	Notes   field.Encrypted[string] `dynamodbav:"notes" enc:"pii"`
}

// CreateTable builds the table with the indexes the item type declares, for
// tests, local development and tools. (The DynamoDB here is a stand-in in
// memory that keeps the table's description.)
func ExampleRepo_CreateTable_indexes() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	db := &tableAPI{}
	tickets, err := repo.New[Ticket]("tickets", repo.WithClient(db), repo.WithRegistry(reg), repo.WithEncryptor(enc.New(enctest.New())),
		repo.WithIndexProjection("ByCreated", "title")) // the others copy every attribute
	if err != nil {
		log.Fatal(err)
	}
	if err := tickets.CreateTable(ctx); err != nil {
		log.Fatal(err)
	}
	in := db.created
	for _, g := range in.GlobalSecondaryIndexes {
		fmt.Println("global", aws.ToString(g.IndexName), keys(g.KeySchema), g.Projection.ProjectionType)
	}
	for _, l := range in.LocalSecondaryIndexes {
		fmt.Println("local", aws.ToString(l.IndexName), keys(l.KeySchema), l.Projection.ProjectionType, l.Projection.NonKeyAttributes)
	}
	d, err := tickets.DescribeTable(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(aws.ToString(d.TableName), d.TableStatus)
	if err := tickets.DeleteTable(ctx); err != nil { // waits until the table is gone
		log.Fatal(err)
	}
	// Output:
	// global ByStatus [status HASH created RANGE] ALL
	// local ByCreated [project HASH created RANGE] INCLUDE [title]
	// tickets ACTIVE
}

func keys(ks []types.KeySchemaElement) []string {
	var out []string
	for _, k := range ks {
		out = append(out, aws.ToString(k.AttributeName), string(k.KeyType))
	}
	return out
}
