package localstack_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynoseal/dynoseal/tests/localstack"
)

// Under make integration this runs on the endpoints the scripts set; with
// neither endpoints nor Docker it is skipped.
func TestNew(t *testing.T) {
	env := localstack.New(t)
	if _, err := env.DynamoDB.ListTables(context.Background(), &dynamodb.ListTablesInput{}); err != nil {
		t.Fatal(err)
	}
	if _, alias := env.Key(t); alias == "" {
		t.Fatal("no alias")
	}
}
