package repo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// writeRecorder is a repo.API that records the requests of single-item
// operations and answers them with what the test set. Any other call panics
// through the nil embedded interface.
type writeRecorder struct {
	repo.API

	mu      sync.Mutex
	puts    []*dynamodb.PutItemInput
	deletes []*dynamodb.DeleteItemInput
	updates []*dynamodb.UpdateItemInput
	gets    []*dynamodb.GetItemInput

	// err is returned by every write; item is returned as GetItem's Item and
	// as the Attributes of writes that ask for them.
	err  error
	item map[string]types.AttributeValue
}

func (w *writeRecorder) calls() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.puts) + len(w.deletes) + len(w.updates) + len(w.gets)
}

func (w *writeRecorder) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.puts = append(w.puts, in)
	if w.err != nil {
		return nil, w.err
	}
	return &dynamodb.PutItemOutput{}, nil
}

func (w *writeRecorder) DeleteItem(_ context.Context, in *dynamodb.DeleteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deletes = append(w.deletes, in)
	if w.err != nil {
		return nil, w.err
	}
	out := &dynamodb.DeleteItemOutput{}
	if in.ReturnValues == types.ReturnValueAllOld {
		out.Attributes = w.item
	}
	return out, nil
}

func (w *writeRecorder) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.updates = append(w.updates, in)
	if w.err != nil {
		return nil, w.err
	}
	out := &dynamodb.UpdateItemOutput{}
	if in.ReturnValues != "" && in.ReturnValues != types.ReturnValueNone {
		out.Attributes = w.item
	}
	return out, nil
}

func (w *writeRecorder) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gets = append(w.gets, in)
	return &dynamodb.GetItemOutput{Item: w.item}, nil
}

func recordedRepo(t *testing.T, opts ...repo.Option) (*repo.Repo[Account], *writeRecorder, *enctest.Provider) {
	t.Helper()
	db := &writeRecorder{}
	r, keys := newRepo(t, append([]repo.Option{repo.WithClient(db)}, opts...)...)
	return r, db, keys
}

// conditionText replaces the placeholders of a request's condition by the
// names and values they stand for, so that tests can compare it as text.
func conditionText(expr *string, names map[string]string, values map[string]types.AttributeValue) string {
	s := aws.ToString(expr)
	for ph, n := range names {
		s = strings.ReplaceAll(s, ph, n)
	}
	for ph, v := range values {
		s = strings.ReplaceAll(s, ph, fmt.Sprint(avString(v)))
	}
	return s
}

func avString(v types.AttributeValue) string {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return fmt.Sprintf("%q", v.Value)
	case *types.AttributeValueMemberN:
		return v.Value
	}
	return fmt.Sprintf("%T", v)
}

func TestPutConditions(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name        string
		opts        []repo.WriteOption
		want        string
		wantFailure types.ReturnValuesOnConditionCheckFailure
	}{
		{"none", nil, "", ""},
		{"if not exists", []repo.WriteOption{repo.IfNotExists()}, "attribute_not_exists (pk)", ""},
		{"if exists", []repo.WriteOption{repo.IfExists()}, "attribute_exists (pk)", ""},
		{"if", []repo.WriteOption{repo.If(expression.Name("name").Equal(expression.Value("n")))}, `name = "n"`, ""},
		{"if and exists", []repo.WriteOption{repo.If(expression.Name("name").Equal(expression.Value("n"))), repo.IfExists()},
			`(name = "n") AND (attribute_exists (pk))`, ""},
		{"existence of encrypted attribute", []repo.WriteOption{repo.If(expression.Name("ssn").AttributeNotExists())}, "attribute_not_exists (ssn)", ""},
		{"return current", []repo.WriteOption{repo.IfNotExists(), repo.ReturnCurrentOnFailure()}, "attribute_not_exists (pk)", types.ReturnValuesOnConditionCheckFailureAllOld},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, db, _ := recordedRepo(t)
			if err := r.Put(ctx, Account{PK: "A", SK: 1, Name: "n"}, c.opts...); err != nil {
				t.Fatal(err)
			}
			in := db.puts[0]
			if got := conditionText(in.ConditionExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues); got != c.want {
				t.Fatalf("condition %q, want %q", got, c.want)
			}
			if in.ReturnValuesOnConditionCheckFailure != c.wantFailure {
				t.Fatalf("ReturnValuesOnConditionCheckFailure %q, want %q", in.ReturnValuesOnConditionCheckFailure, c.wantFailure)
			}
		})
	}
}

func TestWriteOptionsRejectedBeforeAnyRequest(t *testing.T) {
	ctx := context.Background()
	r, db, keys := recordedRepo(t)
	item := Account{PK: "A", SK: 1, SSN: field.NewEncrypted("123-45-6789")}
	k := repo.Key{Hash: "A", Range: 1}
	compare := repo.If(expression.Name("ssn").Equal(expression.Value("123-45-6789")))
	for name, call := range map[string]func() error{
		"put compares encrypted":    func() error { return r.Put(ctx, item, compare) },
		"delete compares encrypted": func() error { return r.Delete(ctx, k, compare) },
		"update compares encrypted": func() error {
			_, err := r.Update(ctx, k, repo.NewUpdate().Set("name", "x"), compare)
			return err
		},
		"put ReturnNew":             func() error { return r.Put(ctx, item, repo.ReturnNew()) },
		"delete ReturnOld":          func() error { return r.Delete(ctx, k, repo.ReturnOld()) },
		"DeleteReturning ReturnNew": func() error { _, err := r.DeleteReturning(ctx, k, repo.ReturnNew()); return err },
		"DeleteReturning ReturnOld": func() error { _, err := r.DeleteReturning(ctx, k, repo.ReturnOld()); return err },
		"exists and not exists":     func() error { return r.Put(ctx, item, repo.IfExists(), repo.IfNotExists()) },
		"update ReturnOld and New": func() error {
			_, err := r.Update(ctx, k, repo.NewUpdate().Set("name", "x"), repo.ReturnOld(), repo.ReturnNew())
			return err
		},
		"unset condition builder":      func() error { return r.Put(ctx, item, repo.If(expression.ConditionBuilder{})) },
		"encrypted inside conjunction": func() error { return r.Put(ctx, item, repo.IfNotExists(), compare) },
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(name, "compares encrypted") || strings.Contains(name, "conjunction") {
				if !errors.Is(err, repo.ErrEncryptedComparison) || !strings.Contains(err.Error(), `"ssn"`) {
					t.Fatalf("err = %v, want ErrEncryptedComparison naming ssn", err)
				}
			}
			if strings.Contains(err.Error(), "123-45-6789") {
				t.Fatalf("error shows the plaintext: %v", err)
			}
		})
	}
	if db.calls() != 0 || keys.Generates.Load() != 0 {
		t.Fatalf("%d requests and %d GenerateDataKey calls for rejected writes", db.calls(), keys.Generates.Load())
	}
}

func TestConditionFailedCarriesOpenedCurrentItem(t *testing.T) {
	ctx := context.Background()
	r, db, keys := recordedRepo(t)
	current, err := r.Marshal(ctx, Account{PK: "A", SK: 1, Name: "old", SSN: field.NewEncrypted("111-11-1111")})
	if err != nil {
		t.Fatal(err)
	}
	db.err = fmt.Errorf("operation error DynamoDB: PutItem: %w", &types.ConditionalCheckFailedException{Message: aws.String("The conditional request failed"), Item: current})

	err = r.Put(ctx, Account{PK: "A", SK: 1, SSN: field.NewEncrypted("222-22-2222")}, repo.IfNotExists(), repo.ReturnCurrentOnFailure())
	if !errors.Is(err, repo.ErrConditionFailed) {
		t.Fatalf("err = %v, want ErrConditionFailed", err)
	}
	var cf *repo.ConditionFailedError[Account]
	if !errors.As(err, &cf) {
		t.Fatalf("err %T does not unwrap to *ConditionFailedError[Account]", err)
	}
	var sdkErr *types.ConditionalCheckFailedException
	if !errors.As(err, &sdkErr) {
		t.Fatal("the SDK's error is not wrapped")
	}
	if !cf.HasCurrent || cf.Current.Name != "old" || cf.Op != "put" || cf.Key != (repo.Key{Hash: "A", Range: 1}) {
		t.Fatalf("error %+v", cf)
	}
	if ssn, err := cf.Current.SSN.Value(); err != nil || ssn != "111-11-1111" {
		t.Fatalf("current ssn %q, %v", ssn, err)
	}
	for _, secret := range []string{"111-11-1111", "222-22-2222"} {
		if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", cf), secret) {
			t.Fatalf("error shows a plaintext: %v", err)
		}
	}

	// Not asked for: not opened, no Decrypt.
	decrypts := keys.Decrypts.Load()
	err = r.Delete(ctx, repo.Key{Hash: "A", Range: 1}, repo.IfExists())
	if !errors.As(err, &cf) || cf.HasCurrent || cf.Op != "delete" {
		t.Fatalf("delete: %v (%+v)", err, cf)
	}
	if keys.Decrypts.Load() != decrypts {
		t.Fatal("current item opened although not asked for")
	}

	// Other errors pass through, not as condition failures.
	db.err = errors.New("throttled")
	if err := r.Put(ctx, Account{PK: "A", SK: 1}); errors.Is(err, repo.ErrConditionFailed) || err == nil {
		t.Fatalf("err = %v", err)
	}
}

func TestDeleteReturning(t *testing.T) {
	ctx := context.Background()
	r, db, _ := recordedRepo(t)
	k := repo.Key{Hash: "A", Range: 1}
	if _, err := r.DeleteReturning(ctx, k); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("missing item: err = %v, want ErrNotFound", err)
	}
	old, err := r.Marshal(ctx, Account{PK: "A", SK: 1, Name: "gone", SSN: field.NewEncrypted("123-45-6789")})
	if err != nil {
		t.Fatal(err)
	}
	db.item = old
	got, err := r.DeleteReturning(ctx, k, repo.If(expression.Name("name").Equal(expression.Value("gone"))))
	if err != nil {
		t.Fatal(err)
	}
	if ssn, _ := got.SSN.Value(); ssn != "123-45-6789" || got.Name != "gone" {
		t.Fatalf("returned %+v", got)
	}
	in := db.deletes[len(db.deletes)-1]
	if in.ReturnValues != types.ReturnValueAllOld || conditionText(in.ConditionExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues) != `name = "gone"` {
		t.Fatalf("request %+v", in)
	}
	if err := r.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	if in := db.deletes[len(db.deletes)-1]; in.ReturnValues != "" || in.ConditionExpression != nil {
		t.Fatalf("plain delete request %+v", in)
	}
}

func TestGetConsistentReadAndProjection(t *testing.T) {
	ctx := context.Background()
	r, db, keys := recordedRepo(t)
	full, err := r.Marshal(ctx, Account{PK: "A", SK: 1, Name: "n", SSN: field.NewEncrypted("123-45-6789")})
	if err != nil {
		t.Fatal(err)
	}
	k := repo.Key{Hash: "A", Range: 1}

	// Left out: the encrypted field is absent and nothing is decrypted.
	db.item = map[string]types.AttributeValue{"pk": full["pk"], "sk": full["sk"], "name": full["name"]}
	got, err := r.Get(ctx, k, repo.ConsistentRead(), repo.Project("pk", "sk", "name"))
	if err != nil {
		t.Fatal(err)
	}
	in := db.gets[0]
	if !aws.ToBool(in.ConsistentRead) {
		t.Fatal("ConsistentRead not sent")
	}
	if p := conditionText(in.ProjectionExpression, in.ExpressionAttributeNames, nil); p != "pk, sk, name" {
		t.Fatalf("projection %q", p)
	}
	if got.Name != "n" || got.SSN.IsPresent() || keys.Decrypts.Load() != 0 {
		t.Fatalf("got %+v, ssn present %v, %d Decrypt calls", got, got.SSN.IsPresent(), keys.Decrypts.Load())
	}

	// Included: opened.
	db.item = map[string]types.AttributeValue{"pk": full["pk"], "sk": full["sk"], "ssn": full["ssn"]}
	got, err = r.Get(ctx, k, repo.Project("ssn"))
	if err != nil {
		t.Fatal(err)
	}
	if in := db.gets[1]; aws.ToBool(in.ConsistentRead) {
		t.Fatal("ConsistentRead sent without being asked for")
	}
	if ssn, err := got.SSN.Value(); err != nil || ssn != "123-45-6789" {
		t.Fatalf("ssn %q, %v", ssn, err)
	}
}
