package repo_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/internal/fakedynamo"
	"github.com/dynoseal/dynoseal/repo"
)

// Subscriber keeps its email sealed under its tenant's encryption context, and
// a beacon of it, led by the tenant, that keys the ByEmail index.
type Subscriber struct {
	Tenant string                  `dynamodbav:"tenant" repo:"hash"`
	ID     string                  `dynamodbav:"id" repo:"range"`
	Email  field.Encrypted[string] `dynamodbav:"email" enc:"subscriber-pii" beacon:"email,prefix=tenant" repo:"gsi:ByEmail:hash"`
}

// Lookup finds subscribers by their sealed email: it queries the beacon's index
// and opens the candidates, keeping only true matches. Two tenants with the
// same email have unrelated beacons, and a lookup names its tenant.
// (The DynamoDB here is an in-memory stand-in; the KMS, enctest's.)
func ExampleRepo_Lookup() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("subscriber-pii", enc.Spec{KeyID: "alias/app", ContextFrom: map[string]string{"tenant": "tenant"}})
	reg.MustRegisterBeacon("email", enc.Beacon{KeyID: "alias/app-beacons", Bits: 16, TrimSpace: true, FoldCase: true})
	subscribers, err := repo.New[Subscriber]("subscribers", repo.WithClient(fakedynamo.New().Client()), repo.WithRegistry(reg),
		repo.WithEncryptor(enc.New(enctest.New(), enc.WithCache(enc.CacheLimits{}))))
	if err != nil {
		log.Fatal(err)
	}
	if err := subscribers.CreateTable(ctx); err != nil {
		log.Fatal(err)
	}
	err = subscribers.BatchPut(ctx, []Subscriber{
		{Tenant: "acme", ID: "S1", Email: field.NewEncrypted("ann@example.com")},
		{Tenant: "acme", ID: "S2", Email: field.NewEncrypted("bob@example.com")},
		{Tenant: "globex", ID: "S1", Email: field.NewEncrypted("ann@example.com")},
	})
	if err != nil {
		log.Fatal(err)
	}
	// What DynamoDB holds beside the sealed email: the tenant and 16 bits.
	stored, err := subscribers.Marshal(ctx, Subscriber{Tenant: "acme", ID: "S3", Email: field.NewEncrypted("ann@example.com")})
	if err != nil {
		log.Fatal(err)
	}
	b := stored["email_beacon"].(*types.AttributeValueMemberS).Value
	fmt.Println(strings.HasPrefix(b, "acme#"), len(b)-len("acme#"), "hex digits")

	for m, err := range subscribers.Lookup(ctx, "email", Subscriber{Tenant: "acme", Email: field.NewEncrypted(" ANN@example.com")}) {
		if err != nil {
			log.Fatal(err)
		}
		email, _ := m.Email.Value()
		fmt.Println(m.Tenant, m.ID, email)
	}
	// A filter may compare beacons for equality: here, acme's subscribers
	// whose email may be bob's (a chance match would be kept too).
	bob, err := subscribers.MatchBeacon(ctx, "email", Subscriber{Tenant: "acme", Email: field.NewEncrypted("bob@example.com")})
	if err != nil {
		log.Fatal(err)
	}
	for m, err := range subscribers.Query(ctx, expression.Key("tenant").Equal(expression.Value("acme")), repo.Filter(bob)) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("filtered:", m.ID)
	}
	fmt.Println("GenerateMac calls:", subscribers.Encryptor().Stats().GenerateMacCalls)
	// Output:
	// true 4 hex digits
	// acme S1 ann@example.com
	// filtered: S2
	// GenerateMac calls: 1
}
