package field_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

func ExampleNewEncrypted() {
	ssn := field.NewEncrypted("123-45-6789")
	v, err := ssn.Value()
	fmt.Println(v, err)

	ssn.Set("987-65-4321")
	v, _ = ssn.Value()
	fmt.Println(v)

	// A new value is sealed by the repository on the next write.
	fmt.Println(ssn.IsSealed(), ssn.Ciphertext() == "")

	// The zero value is absent: stored as NULL, Value gives T's zero value.
	var absent field.Encrypted[int]
	n, err := absent.Value()
	fmt.Println(absent.IsPresent(), n, err)
	// Output:
	// 123-45-6789 <nil>
	// 987-65-4321
	// false true
	// false 0 <nil>
}

type Customer struct {
	PK      string                  `dynamodbav:"pk" repo:"hash"`
	Name    string                  `dynamodbav:"name"`
	SSN     field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
	Balance field.Encrypted[int64]  `dynamodbav:"balance" enc:"pii"`
}

// fmt, encoding/json and log/slog show [encrypted] instead of the value,
// also when they print the struct that holds it.
func Example_redaction() {
	c := Customer{PK: "C#1", Name: "Ann", SSN: field.NewEncrypted("123-45-6789"), Balance: field.NewEncrypted(int64(1200))}

	fmt.Printf("%v\n", c.SSN)
	fmt.Printf("%+v\n", c)

	b, _ := json.Marshal(c)
	fmt.Println(string(b))

	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // keep the example's output stable
			}
			return a
		},
	}))
	log.Info("saved", "ssn", c.SSN, "customer", c)
	// Output:
	// [encrypted]
	// {PK:C#1 Name:Ann SSN:[encrypted] Balance:[encrypted]}
	// {"PK":"C#1","Name":"Ann","SSN":"[encrypted]","Balance":"[encrypted]"}
	// level=INFO msg=saved ssn=[encrypted] customer="{PK:C#1 Name:Ann SSN:[encrypted] Balance:[encrypted]}"
}

// A repository seals Encrypted fields when it marshals an item and opens
// them when it unmarshals one. enctest stands in for KMS here; use
// kmsx.New() (the default) in a program.
func Example_sealing() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/my-app-key"})
	customers, err := repo.New[Customer]("customers", repo.WithRegistry(reg), repo.WithEncryptor(enc.New(enctest.New())))
	if err != nil {
		fmt.Println(err)
		return
	}

	item, err := customers.Marshal(ctx, Customer{PK: "C#1", SSN: field.NewEncrypted("123-45-6789"), Balance: field.NewEncrypted(int64(1200))})
	if err != nil {
		fmt.Println(err)
		return
	}
	stored := item["ssn"].(*types.AttributeValueMemberS).Value
	fmt.Println(strings.HasPrefix(stored, enc.Prefix), strings.Contains(stored, "123-45-6789"))

	loaded, err := customers.Unmarshal(ctx, item)
	if err != nil {
		fmt.Println(err)
		return
	}
	ssn, _ := loaded.SSN.Value()
	balance, _ := loaded.Balance.Value()
	fmt.Println(ssn, balance, loaded.SSN.IsSealed())
	fmt.Println(strings.HasPrefix(loaded.SSN.Ciphertext(), enc.Prefix))
	fmt.Println(customers.Encryptor().Stats().GenerateDataKeyCalls, customers.Encryptor().Stats().DecryptCalls)
	// Output:
	// true false
	// 123-45-6789 1200 true
	// true
	// 1 1
}
