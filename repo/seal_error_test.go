package repo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// tenantKMS refuses data keys for one tenant's context, as a KMS key
// policy with a kms:EncryptionContext condition would.
type tenantKMS struct {
	*enctest.Provider
	refused string
}

func (p tenantKMS) GenerateDataKey(ctx context.Context, k enc.KeyRef) ([]byte, []byte, error) {
	if k.Context["tenant"] == p.refused {
		return nil, nil, fmt.Errorf("%w: not for this tenant", enc.ErrAccessDenied)
	}
	return p.Provider.GenerateDataKey(ctx, k)
}

type TenantItem struct {
	PK     string                  `dynamodbav:"pk" repo:"hash"`
	Tenant string                  `dynamodbav:"tenant"`
	Secret field.Encrypted[string] `dynamodbav:"secret" enc:"t"`
}

// A write whose sealing fails names the item, like a read's error does;
// a batch also says which of its items and which tenant.
func TestSealErrorsNameTheItem(t *testing.T) {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("t", enc.Spec{KeyID: "k", ContextFrom: map[string]string{"tenant": "tenant"}})
	db := &writeRecorder{}
	r, err := repo.New[TenantItem]("items", repo.WithClient(db), repo.WithRegistry(reg),
		repo.WithEncryptor(enc.New(tenantKMS{Provider: enctest.New(), refused: "globex"})))
	if err != nil {
		t.Fatal(err)
	}
	item := func(pk, tenant string) TenantItem {
		return TenantItem{PK: pk, Tenant: tenant, Secret: field.NewEncrypted("s3cret")}
	}
	err = r.Put(ctx, item("A", "globex"))
	if !errors.Is(err, enc.ErrAccessDenied) || !strings.HasPrefix(err.Error(), `repo items: put {Hash:"A"}: `) {
		t.Fatalf("Put: %v, want the repo items: put {Hash:\"A\"}: prefix", err)
	}
	err = r.BatchPut(ctx, []TenantItem{item("A", "acme"), item("B", "acme"), item("C", "globex")})
	if !errors.Is(err, enc.ErrAccessDenied) || !strings.Contains(err.Error(), `BatchPut {Hash:"C"} (item 2 of 3, encryption context tenant="globex")`) {
		t.Fatalf("BatchPut: %v, want it to name item C of tenant globex", err)
	}
	err = r.BatchPut(ctx, []TenantItem{item("A", "acme"), item("B", "")})
	if !errors.Is(err, enc.ErrItemContext) || !strings.Contains(err.Error(), `{Hash:"B"} (item 1 of 2`) {
		t.Fatalf("BatchPut with an empty tenant: %v, want it to name item B", err)
	}
	err = repo.Transact(ctx, r.TxPut(item("A", "acme")), r.TxPut(item("D", "globex")))
	if !errors.Is(err, enc.ErrAccessDenied) || !strings.Contains(err.Error(), `put items {Hash:"D"}`) {
		t.Fatalf("Transact: %v, want it to name the put of D", err)
	}
	if strings.Contains(fmt.Sprint(err), "s3cret") || db.calls() != 0 {
		t.Fatalf("%d requests sent; error %v", db.calls(), err)
	}
}

// CheckKeys checks each spec once, with the sample's tenant for specs that
// take context from the item.
func TestCheckKeysUsesTheSample(t *testing.T) {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("t", enc.Spec{KeyID: "k", ContextFrom: map[string]string{"tenant": "tenant"}})
	keys := enctest.New()
	r, err := repo.New[TenantItem]("items", repo.WithClient(&writeRecorder{}), repo.WithRegistry(reg),
		repo.WithEncryptor(enc.New(tenantKMS{Provider: keys, refused: "globex"})))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CheckKeys(ctx, map[string]string{"tenant": "acme"}); err != nil {
		t.Fatal(err)
	}
	if err := r.CheckKeys(ctx, map[string]string{"tenant": "globex"}); !errors.Is(err, enc.ErrAccessDenied) || !strings.Contains(err.Error(), `spec "t"`) {
		t.Fatalf("refused tenant: %v", err)
	}
	if err := r.CheckKeys(ctx, nil); err == nil || !strings.Contains(err.Error(), "sample value for it") {
		t.Fatalf("no sample: %v", err)
	}
	if n := keys.Generates.Load(); n != 1 {
		t.Fatalf("%d GenerateDataKey calls, want 1 (the refused tenant's call is made by the wrapper, not the provider)", n)
	}
}
