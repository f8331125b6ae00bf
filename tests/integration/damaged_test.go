package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// damagedSet writes customers 0..4 of one tenant through the repository,
// then damages customer 2's card directly in the table: a stored value of a
// type the field cannot hold (BOOL) or an envelope changed by one character.
func damagedSet(t *testing.T, f *fixture, damage string) *repo.Repo[batchCustomer] {
	t.Helper()
	r := batchRepo(t, f)
	if err := r.BatchPut(context.Background(), newBatchCustomers(5)); err != nil {
		t.Fatal(err)
	}
	key := map[string]types.AttributeValue{"tenant": s("acme"), "id": &types.AttributeValueMemberN{Value: "2"}}
	item := f.rawItem(t, r.Table(), key)
	switch damage {
	case "wrong type":
		item["card"] = &types.AttributeValueMemberBOOL{Value: true}
	case "changed ciphertext":
		v := storedString(t, item, "card")
		i := len(v) - 8
		c := byte('A')
		if v[i] == 'A' {
			c = 'B'
		}
		item["card"] = s(v[:i] + string(c) + v[i+1:])
	}
	f.rawPut(t, r.Table(), item)
	return r
}

// One damaged item neither stops a query, a scan or a BatchGet nor hides
// which item it is: the others come back opened, and its error names the
// table, the operation, the key and the attribute (trap 6 of the codec
// issue, on real services).
func TestDamagedItemIsReportedAndTheRestRead(t *testing.T) {
	for _, damage := range []string{"wrong type", "changed ciphertext"} {
		t.Run(damage, func(t *testing.T) {
			f := newFixture(t)
			r := damagedSet(t, f, damage)
			ctx := context.Background()
			want := enc.ErrMalformed
			if damage == "changed ciphertext" {
				want = enc.ErrInvalidCiphertext
			}
			check := func(op string, err error) {
				t.Helper()
				var ie *repo.ItemError
				ee, isEnc := enc.AsError(err)
				if !errors.As(err, &ie) || !isEnc || !errors.Is(err, want) {
					t.Fatalf("%s: %v, want an *repo.ItemError wrapping an *enc.Error and %v", op, err, want)
				}
				if fmt.Sprint(ie.Key) != `{Hash:"acme" Range:2}` || ee.Attribute != "card" || !strings.Contains(err.Error(), r.Table()) {
					t.Fatalf("%s: error names key %v, attribute %q: %v", op, ie.Key, ee.Attribute, err)
				}
			}
			read := func(op string, seq func(func(batchCustomer, error) bool)) {
				t.Helper()
				var ids []int
				errs := 0
				for c, err := range seq {
					if err != nil {
						check(op, err)
						errs++
						continue
					}
					checkBatchCustomer(t, c, c.ID)
					ids = append(ids, c.ID)
				}
				if errs != 1 || fmt.Sprint(ids) != "[0 1 3 4]" {
					t.Fatalf("%s: items %v and %d errors, want 0 1 3 4 and one error", op, ids, errs)
				}
			}
			read("query", r.Query(ctx, expression.Key("tenant").Equal(expression.Value("acme"))))
			read("scan", func(yield func(batchCustomer, error) bool) {
				var got []batchCustomer
				var failed error
				for c, err := range r.Scan(ctx) {
					if err != nil {
						failed = err
						continue
					}
					got = append(got, c)
				}
				// A scan has no order; yield in key order for the check.
				for id := range 5 {
					for _, c := range got {
						if c.ID == id && !yield(c, nil) {
							return
						}
					}
					if id == 2 && failed != nil && !yield(batchCustomer{}, failed) {
						return
					}
				}
			})

			got, err := r.BatchGet(ctx, batchKeys(0, 1, 2, 3, 4))
			var be *repo.BatchError
			if !errors.As(err, &be) || fmt.Sprint(be.Unprocessed) != `[{Hash:"acme" Range:2}]` {
				t.Fatalf("BatchGet: %v", err)
			}
			check("BatchGet", err)
			if len(got) != 4 || got[2].ID != 3 {
				t.Fatalf("BatchGet returned %d items", len(got))
			}
			for _, c := range got {
				checkBatchCustomer(t, c, c.ID)
			}
		})
	}
}

// A write whose returned item cannot be opened has still happened, so it
// reports success: the value stays sealed and says why (trap 4 of the codec
// issue). KMS refusing Decrypt is injected in the SDK client, as AWS would
// answer a service without kms:Decrypt; both emulators allow it otherwise.
func TestWriteSucceedsWhenItsReturnedItemCannotBeOpened(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	writer := users(t, f)
	var attempts atomic.Int64
	noDecrypt := engineRepoOn[User](t, f, writer.Table(), repo.WithEncryptor(f.env.Encryptor(engineInjectKMSError("AccessDeniedException", &attempts, "Decrypt"))))
	if err := writer.Put(ctx, User{PK: "U#1", Email: "a@example.com", SSN: field.NewEncrypted(engineSSN)}); err != nil {
		t.Fatal(err)
	}
	checkSealed := func(op string, u User, err error) {
		t.Helper()
		_, valueErr := u.SSN.Value()
		if err != nil || !u.SSN.IsSealed() || !errors.Is(valueErr, enc.ErrAccessDenied) {
			t.Fatalf("%s: err %v, sealed %v, Value() error %v", op, err, u.SSN.IsSealed(), valueErr)
		}
	}
	u, err := noDecrypt.Update(ctx, repo.Key{Hash: "U#1"}, repo.NewUpdate().Set("email", "b@example.com"), repo.ReturnNew())
	checkSealed("Update ReturnNew", u, err)
	if u.Email != "b@example.com" || storedString(t, f.rawItem(t, writer.Table(), enginePK("U#1")), "email") != "b@example.com" {
		t.Fatalf("the update is not there: %q", u.Email)
	}
	u, err = noDecrypt.DeleteReturning(ctx, repo.Key{Hash: "U#1"})
	checkSealed("DeleteReturning", u, err)
	if f.engineRawOrNil(t, writer.Table(), enginePK("U#1")) != nil {
		t.Fatal("DeleteReturning reported success but the item is still there")
	}
	if attempts.Load() == 0 {
		t.Fatal("Decrypt was never asked for")
	}
}
