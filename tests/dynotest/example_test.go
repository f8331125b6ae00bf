package dynotest_test

import (
	"context"
	"testing"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
	"github.com/dynoseal/dynoseal/tests/dynotest"
)

type User struct {
	PK  string                  `dynamodbav:"pk" repo:"hash"`
	SSN field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
}

// A test gets local services, a fresh KMS key and a table of its own; all of
// them are removed when the test ends.
func Example() {
	testSaveUser := func(t *testing.T) {
		env := dynotest.New(t) // skips the test when no services can be had
		_, alias := env.Key(t)
		reg := enc.NewRegistry()
		reg.MustRegister("pii", enc.Spec{KeyID: alias})
		users := dynotest.Table[User](t, env, repo.WithRegistry(reg))

		ctx := context.Background()
		if err := users.Put(ctx, User{PK: "USER#1", SSN: field.NewEncrypted("123-45-6789")}); err != nil {
			t.Fatal(err)
		}
		u, err := users.Get(ctx, repo.Key{Hash: "USER#1"})
		if err != nil {
			t.Fatal(err)
		}
		if ssn, _ := u.SSN.Value(); ssn != "123-45-6789" {
			t.Fatalf("ssn %q", ssn)
		}
		t.Logf("KMS calls: %+v", users.Encryptor().Stats())
	}
	_ = testSaveUser
}
