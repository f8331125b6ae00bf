package kmsx_test

import (
	"context"
	"log"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/kmsx"
	"github.com/dynoseal/dynoseal/repo"
)

type User struct {
	PK  string                  `dynamodbav:"pk" repo:"hash"`
	SSN field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
}

// New loads the default AWS configuration (environment, shared files, IAM
// role; AWS_ENDPOINT_URL_KMS too) on the first KMS call, and makes one KMS
// client per region that the specs name.
func ExampleNew() {
	keys := kmsx.New(
		kmsx.WithLoadOptions(config.WithRegion("eu-west-1")),
		kmsx.WithClientOptions(func(o *kms.Options) { o.RetryMaxAttempts = 5 }),
	)
	encryptor := enc.New(keys)

	enc.MustRegister("pii", enc.Spec{KeyID: "alias/my-app-key"})
	// Specs may name another region; that region gets its own client.
	enc.MustRegister("pii-us", enc.Spec{KeyID: "alias/my-app-key", Region: "us-east-1"})

	users, err := repo.New[User]("users", repo.WithEncryptor(encryptor))
	if err != nil {
		log.Fatal(err)
	}
	_ = users
}

// NewFromConfig uses a configuration the program already has, e.g. with
// credentials from somewhere other than the default chain.
func ExampleNewFromConfig() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("eu-west-1"), config.WithRetryer(func() aws.Retryer {
		return retry.AddWithMaxAttempts(retry.NewStandard(), 5)
	}))
	if err != nil {
		log.Fatal(err)
	}
	encryptor := enc.New(kmsx.NewFromConfig(cfg))

	stored, err := encryptor.Encrypt(ctx, enc.Spec{KeyID: "alias/my-app-key"}, []byte("123-45-6789"))
	if err != nil {
		log.Fatal(err)
	}
	log.Println(stored) // ENC:AQ...
}
