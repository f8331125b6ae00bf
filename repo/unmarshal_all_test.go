package repo_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/repo"
)

// Items sealed under one data key cost one Decrypt together, and a damaged
// one fails alone.
func TestUnmarshalAllOneDecryptPerDataKey(t *testing.T) {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	keys := enctest.New()
	// The writer reuses its data key, so every item is sealed under one.
	writer, err := repo.New[trapUser]("users", repo.WithRegistry(reg), repo.WithEncryptor(enc.New(keys, enc.WithEncryptCache(enc.CacheLimits{}))))
	if err != nil {
		t.Fatal(err)
	}
	reader, err := repo.New[trapUser]("users", repo.WithRegistry(reg), repo.WithEncryptor(enc.New(keys)))
	if err != nil {
		t.Fatal(err)
	}
	var raw []map[string]types.AttributeValue
	for i := range 5 {
		u := trapUser{PK: fmt.Sprintf("u%d", i), Name: "n"}
		u.SSN.Set(fmt.Sprintf("000-00-000%d", i))
		m, err := writer.Marshal(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, m)
	}
	raw[3]["ssn"] = &types.AttributeValueMemberS{Value: "ENC:AQ=="}

	items, errs := reader.UnmarshalAll(ctx, raw)
	for i, u := range items {
		if i == 3 {
			var ie *repo.ItemError
			if !errors.As(errs[i], &ie) || ie.Key.Hash != "u3" {
				t.Errorf("item 3: err = %v, want an *ItemError for u3", errs[i])
			}
			continue
		}
		if errs[i] != nil {
			t.Fatalf("item %d: %v", i, errs[i])
		}
		if got, _ := u.SSN.Value(); got != fmt.Sprintf("000-00-000%d", i) {
			t.Errorf("item %d: ssn did not open to its value", i)
		}
	}
	if n := reader.Encryptor().Stats().DecryptCalls; n != 1 {
		t.Errorf("Decrypt calls = %d, want 1", n)
	}
	if items, errs := reader.UnmarshalAll(ctx, nil); items != nil || errs != nil {
		t.Errorf("UnmarshalAll(nil) = %v, %v", items, errs)
	}
}
