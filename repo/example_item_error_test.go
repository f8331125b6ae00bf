package repo_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/repo"
)

// A damaged item does not end a query: it comes in its place as an
// *ItemError naming its key and attribute, and the loop goes on. (The table
// here is in memory and the KMS key too.)
func ExampleItemError() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	db := newTrapDB("users", "pk")
	users, _ := repo.New[trapUser]("users", repo.WithClient(db), repo.WithRegistry(reg), repo.WithEncryptor(enc.New(enctest.New())))
	for _, pk := range []string{"u1", "u2", "u3"} {
		_ = users.Put(ctx, trapUser{PK: pk, Name: pk})
	}
	// Someone stored a number where the SSN belongs.
	db.set(map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "u2"}, "ssn": &types.AttributeValueMemberBOOL{Value: true}})

	for u, err := range users.Query(ctx, expression.Key("pk").Equal(expression.Value("u1"))) {
		var ie *repo.ItemError
		if errors.As(err, &ie) {
			ee, _ := enc.AsError(err)
			fmt.Println("skipped", ie.Key, "attribute", ee.Attribute, errors.Is(err, enc.ErrMalformed))
			continue
		}
		fmt.Println("read", u.PK)
	}
	// Output:
	// read u1
	// skipped {Hash:"u2"} attribute ssn true
	// read u3
}

// An item a write returns is opened after the write has happened, so a
// value that cannot be opened does not fail the call: the item is deleted,
// and the value stays sealed with the reason.
func ExampleRepo_DeleteReturning_sealedWhenKMSFails() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	keys := enctest.New()
	db := newTrapDB("users", "pk")
	users, _ := repo.New[trapUser]("users", repo.WithClient(db), repo.WithRegistry(reg), repo.WithEncryptor(enc.New(keys)))
	u := trapUser{PK: "u1", Name: "Ann"}
	u.SSN.Set("123-45-6789")
	_ = users.Put(ctx, u)

	keys.Fail = func(op string, _ enc.KeyRef) error { return enc.ErrAccessDenied } // KMS refuses from now on
	old, err := users.DeleteReturning(ctx, repo.Key{Hash: "u1"})
	_, valueErr := old.SSN.Value()
	fmt.Println(err, old.Name, old.SSN.IsSealed(), errors.Is(valueErr, enc.ErrAccessDenied), db.count())
	// Output: <nil> Ann true true 0
}
