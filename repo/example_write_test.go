package repo_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// Customer is the item type of the write examples. Each example registers
// its "pii" spec in a registry of its own, so it can be copied as it is; an
// application usually registers it once at start-up with enc.MustRegister.
type Customer struct {
	PK     string                  `dynamodbav:"pk" repo:"hash"`
	Email  string                  `dynamodbav:"email"`
	Plan   string                  `dynamodbav:"plan"`
	Logins int64                   `dynamodbav:"logins"`
	Tags   []string                `dynamodbav:"tags,stringset,omitempty"`
	SSN    field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
}

// Create an item only if no item has its key, and see who was there first.
func ExampleRepo_Put_ifNotExists() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/my-app-key"})
	customers, err := repo.New[Customer]("customers", repo.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}

	err = customers.Put(ctx, Customer{PK: "CUST#1", Email: "ann@example.com", SSN: field.NewEncrypted("123-45-6789")},
		repo.IfNotExists(), repo.ReturnCurrentOnFailure())
	var taken *repo.ConditionFailedError[Customer]
	switch {
	case errors.As(err, &taken):
		// The current item comes back opened.
		fmt.Println("already taken by", taken.Current.Email)
	case err != nil:
		log.Fatal(err)
	}
}

// Replace an item only while it is still on the plan the caller saw.
func ExampleRepo_Put_condition() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/my-app-key"})
	customers, err := repo.New[Customer]("customers", repo.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
	c := Customer{PK: "CUST#1", Email: "ann@example.com", Plan: "pro"}
	err = customers.Put(ctx, c, repo.If(expression.Name("plan").Equal(expression.Value("free"))))
	if errors.Is(err, repo.ErrConditionFailed) {
		fmt.Println("the plan changed meanwhile")
	}
}

// Change some attributes in place; the new SSN is sealed before the request.
func ExampleRepo_Update() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/my-app-key"})
	customers, err := repo.New[Customer]("customers", repo.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
	updated, err := customers.Update(ctx, repo.Key{Hash: "CUST#1"},
		repo.NewUpdate().
			Set("email", "ann@example.org").
			Set("ssn", "987-65-4321"). // sealed: ssn is encrypted
			Add("logins", 1).
			Add("tags", []string{"vip"}). // a set: the field says ",stringset"
			Remove("plan"),
		repo.IfExists(), repo.ReturnNew())
	if err != nil {
		log.Fatal(err)
	}
	ssn, err := updated.SSN.Value()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(updated.Logins, ssn)
}

// Read one item strongly consistently, and only the attributes needed.
func ExampleRepo_Get_options() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/my-app-key"})
	customers, err := repo.New[Customer]("customers", repo.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
	// Leaving ssn out of the projection also saves its KMS Decrypt.
	c, err := customers.Get(ctx, repo.Key{Hash: "CUST#1"}, repo.ConsistentRead(), repo.Project("pk", "email", "plan"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Email, c.Plan, c.SSN.IsPresent()) // ... false
}

// Remove an item and keep what it held.
func ExampleRepo_DeleteReturning() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/my-app-key"})
	customers, err := repo.New[Customer]("customers", repo.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
	old, err := customers.DeleteReturning(ctx, repo.Key{Hash: "CUST#1"})
	switch {
	case errors.Is(err, repo.ErrNotFound):
		fmt.Println("nothing to delete")
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println("deleted", old.Email)
	}
}
