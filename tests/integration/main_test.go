// Package integration checks the library against real DynamoDB and KMS
// emulators through the AWS SDK. Run it with `make test`, which starts the
// services of each backend and sets the standard endpoint variables; a plain
// `go test ./integration/` lets dynotest start moto_server (or, with
// DYNOTEST_BACKEND=strict, dynalite and local-kms) once for the package.
package integration

import (
	"context"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/dynotest"
	_ "github.com/dynoseal/dynoseal/dynotest/localkms" // the KMS beside dynalite when dynotest starts it
	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

func TestMain(m *testing.M) { os.Exit(dynotest.Main(m)) }

type User struct {
	PK    string                  `dynamodbav:"pk" repo:"hash"`
	Email string                  `dynamodbav:"email"`
	SSN   field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
}

// fixture is one test's services, key and table.
type fixture struct {
	env   *dynotest.Env
	keyID string
	alias string
	reg   *enc.Registry
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := dynotest.New(t)
	keyID, alias := env.Key(t)
	return &fixture{env: env, keyID: keyID, alias: alias, reg: enc.NewRegistry()}
}

// rawItem reads an item with a plain GetItem, bypassing the repository.
func (f *fixture) rawItem(t *testing.T, table string, key map[string]types.AttributeValue) map[string]types.AttributeValue {
	t.Helper()
	out, err := f.env.DynamoDB.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(table), Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatalf("raw GetItem: %v", err)
	}
	if out.Item == nil {
		t.Fatalf("raw GetItem: no item %v", key)
	}
	return out.Item
}

func (f *fixture) rawPut(t *testing.T, table string, item map[string]types.AttributeValue) {
	t.Helper()
	if _, err := f.env.DynamoDB.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatalf("raw PutItem: %v", err)
	}
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func storedString(t *testing.T, item map[string]types.AttributeValue, attr string) string {
	t.Helper()
	v, ok := item[attr].(*types.AttributeValueMemberS)
	if !ok {
		t.Fatalf("attribute %s is %#v, want a string", attr, item[attr])
	}
	return v.Value
}

func users(t *testing.T, f *fixture, opts ...repo.Option) *repo.Repo[User] {
	t.Helper()
	if _, ok := f.reg.Lookup("pii"); !ok {
		f.reg.MustRegister("pii", enc.Spec{KeyID: f.alias})
	}
	return dynotest.Table[User](t, f.env, append([]repo.Option{repo.WithRegistry(f.reg)}, opts...)...)
}
