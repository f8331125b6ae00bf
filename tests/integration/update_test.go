package integration

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/dynoseal/dynoseal/dynotest"
	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// Subscriber has an attribute for every kind of update action.
type Subscriber struct {
	PK       string                  `dynamodbav:"pk" repo:"hash"`
	Email    string                  `dynamodbav:"email"`
	Nickname string                  `dynamodbav:"nickname,omitempty"`
	Plan     string                  `dynamodbav:"plan"`
	Logins   int64                   `dynamodbav:"logins"`
	Tags     []string                `dynamodbav:"tags,stringset,omitempty"`
	History  []string                `dynamodbav:"history"`
	SSN      field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
	Phone    field.Encrypted[string] `dynamodbav:"phone" enc:"pii"`
}

// wireLog records the bodies of the DynamoDB requests a client sends, as
// they leave the SDK, by operation.
type wireLog struct {
	mu     sync.Mutex
	bodies map[string][]string
}

// client returns a DynamoDB client of env that records its requests in w.
func (w *wireLog) client(env *dynotest.Env) *dynamodb.Client {
	w.bodies = map[string][]string{}
	return dynamodb.NewFromConfig(env.Config, func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			// After signing, so the recorded body is byte for byte what is sent.
			return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("dynoseal-wire-log",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					if req, ok := in.Request.(*smithyhttp.Request); ok && req.GetStream() != nil {
						body, err := io.ReadAll(req.GetStream())
						if err != nil {
							return middleware.FinalizeOutput{}, middleware.Metadata{}, err
						}
						if in.Request, err = req.SetStream(bytes.NewReader(body)); err != nil {
							return middleware.FinalizeOutput{}, middleware.Metadata{}, err
						}
						w.mu.Lock()
						w.bodies[middleware.GetOperationName(ctx)] = append(w.bodies[middleware.GetOperationName(ctx)], string(body))
						w.mu.Unlock()
					}
					return next.HandleFinalize(ctx, in)
				}), middleware.After)
		})
	})
}

func (w *wireLog) sent(op string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.bodies[op])
}

func subscribers(t *testing.T, f *fixture, opts ...repo.Option) *repo.Repo[Subscriber] {
	t.Helper()
	if _, ok := f.reg.Lookup("pii"); !ok {
		f.reg.MustRegister("pii", enc.Spec{KeyID: f.alias})
	}
	return dynotest.Table[Subscriber](t, f.env, append([]repo.Option{repo.WithRegistry(f.reg)}, opts...)...)
}

func subscriberKey(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": s(pk)}
}

func TestPutIfNotExistsTwiceReturnsCurrentItem(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := users(t, f)
	first := User{PK: "USER#1", Email: "first@example.com", SSN: field.NewEncrypted("111-11-1111")}
	if err := r.Put(ctx, first, repo.IfNotExists()); err != nil {
		t.Fatal(err)
	}
	stored := storedString(t, f.rawItem(t, r.Table(), subscriberKey("USER#1")), "ssn")

	second := User{PK: "USER#1", Email: "second@example.com", SSN: field.NewEncrypted("222-22-2222")}
	err := r.Put(ctx, second, repo.IfNotExists(), repo.ReturnCurrentOnFailure())
	if !errors.Is(err, repo.ErrConditionFailed) {
		t.Fatalf("second put: err = %v, want ErrConditionFailed", err)
	}
	var cf *repo.ConditionFailedError[User]
	if !errors.As(err, &cf) {
		t.Fatalf("err %T is not a *ConditionFailedError[User]", err)
	}
	if strings.Contains(err.Error(), "111-11-1111") || strings.Contains(err.Error(), "222-22-2222") {
		t.Fatalf("error shows plaintext: %v", err)
	}
	if f.env.Backend == "strict" {
		// dynalite predates ReturnValuesOnConditionCheckFailure: it accepts
		// the parameter but never returns the item, as AWS and moto do.
		if cf.HasCurrent {
			t.Fatal("dynalite returned the current item; drop this branch")
		}
	} else {
		if !cf.HasCurrent || cf.Current.Email != "first@example.com" {
			t.Fatalf("current item %+v (HasCurrent %v)", cf.Current, cf.HasCurrent)
		}
		if ssn, err := cf.Current.SSN.Value(); err != nil || ssn != "111-11-1111" {
			t.Fatalf("current ssn %q, %v", ssn, err)
		}
	}

	// Not asked for: no item, no Decrypt.
	decrypts := r.Encryptor().Stats().DecryptCalls
	err = r.Put(ctx, second, repo.IfNotExists())
	if !errors.As(err, &cf) || cf.HasCurrent {
		t.Fatalf("err = %v, HasCurrent %v", err, cf != nil && cf.HasCurrent)
	}
	if r.Encryptor().Stats().DecryptCalls != decrypts {
		t.Fatal("the current item was opened although not asked for")
	}
	if got := storedString(t, f.rawItem(t, r.Table(), subscriberKey("USER#1")), "ssn"); got != stored {
		t.Fatal("a failed conditional put changed the item")
	}

	// IfExists replaces an existing item and refuses to create one.
	if err := r.Put(ctx, second, repo.IfExists()); err != nil {
		t.Fatal(err)
	}
	if err := r.Put(ctx, User{PK: "USER#2"}, repo.IfExists()); !errors.Is(err, repo.ErrConditionFailed) {
		t.Fatalf("IfExists on a missing item: err = %v", err)
	}
}

func TestConditionalDelete(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := users(t, f)
	if err := r.Put(ctx, User{PK: "USER#1", Email: "a@example.com", SSN: field.NewEncrypted("123-45-6789")}); err != nil {
		t.Fatal(err)
	}
	k := repo.Key{Hash: "USER#1"}

	err := r.Delete(ctx, k, repo.If(expression.Name("email").Equal(expression.Value("b@example.com"))), repo.ReturnCurrentOnFailure())
	var cf *repo.ConditionFailedError[User]
	if !errors.As(err, &cf) || cf.Op != "delete" || cf.Key != k {
		t.Fatalf("err = %v", err)
	}
	if f.env.Backend != "strict" { // dynalite: see TestPutIfNotExistsTwiceReturnsCurrentItem
		if ssn, _ := cf.Current.SSN.Value(); ssn != "123-45-6789" {
			t.Fatalf("current ssn %q", ssn)
		}
	}
	f.rawItem(t, r.Table(), subscriberKey("USER#1")) // still there

	if err := r.Delete(ctx, repo.Key{Hash: "USER#none"}, repo.IfExists()); !errors.Is(err, repo.ErrConditionFailed) {
		t.Fatalf("IfExists on a missing item: err = %v", err)
	}
	if err := r.Delete(ctx, repo.Key{Hash: "USER#none"}); err != nil {
		t.Fatalf("unconditional delete of a missing item: %v", err)
	}

	old, err := r.DeleteReturning(ctx, k, repo.If(expression.Name("email").Equal(expression.Value("a@example.com"))))
	if err != nil {
		t.Fatal(err)
	}
	if ssn, err := old.SSN.Value(); err != nil || ssn != "123-45-6789" || old.Email != "a@example.com" {
		t.Fatalf("deleted item %+v, ssn %q, %v", old, ssn, err)
	}
	if _, err := r.Get(ctx, k, repo.ConsistentRead()); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("after delete: err = %v", err)
	}
	if _, err := r.DeleteReturning(ctx, k); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("DeleteReturning of a missing item: err = %v", err)
	}
}

func TestUpdateEachAction(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := subscribers(t, f)
	k := repo.Key{Hash: "SUB#1"}
	err := r.Put(ctx, Subscriber{PK: "SUB#1", Email: "a@example.com", Nickname: "al", Plan: "free", Logins: 2,
		Tags: []string{"trial", "beta"}, History: []string{"signup"}})
	if err != nil {
		t.Fatal(err)
	}

	old, err := r.Update(ctx, k, repo.NewUpdate().
		Set("email", "b@example.com").
		SetIfNotExists("plan", "pro"). // exists: kept
		Add("logins", 3).
		Add("tags", []string{"vip"}).
		Append("history", "login").
		Remove("nickname"),
		repo.ReturnOld())
	if err != nil {
		t.Fatal(err)
	}
	if old.Email != "a@example.com" || old.Logins != 2 || old.Nickname != "al" {
		t.Fatalf("old item %+v", old)
	}

	got, err := r.Update(ctx, k, repo.NewUpdate().
		DeleteFromSet("tags", []string{"trial"}).
		Append("history", []string{"logout", "login"}),
		repo.ReturnNew(), repo.IfExists())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got.Tags)
	want := Subscriber{PK: "SUB#1", Email: "b@example.com", Plan: "free", Logins: 5,
		Tags: []string{"beta", "vip"}, History: []string{"signup", "login", "logout", "login"}}
	if got.Email != want.Email || got.Plan != want.Plan || got.Logins != want.Logins || got.Nickname != "" ||
		!slices.Equal(got.Tags, want.Tags) || !slices.Equal(got.History, want.History) {
		t.Fatalf("new item\n got %+v\nwant %+v", got, want)
	}

	// On a missing item: Update creates it; SetIfNotExists sets, Add starts
	// from zero, Append starts a list.
	created, err := r.Update(ctx, repo.Key{Hash: "SUB#2"}, repo.NewUpdate().
		SetIfNotExists("plan", "pro").
		Add("logins", 1).
		Append("history", "signup"),
		repo.ReturnNew())
	if err != nil {
		t.Fatal(err)
	}
	if created.Plan != "pro" || created.Logins != 1 || !slices.Equal(created.History, []string{"signup"}) {
		t.Fatalf("created item %+v", created)
	}

	// IfExists refuses to create.
	_, err = r.Update(ctx, repo.Key{Hash: "SUB#3"}, repo.NewUpdate().Set("plan", "pro"), repo.IfExists())
	if !errors.Is(err, repo.ErrConditionFailed) {
		t.Fatalf("IfExists on a missing item: err = %v", err)
	}
}

func TestEncryptedUpdateNeverSendsPlaintext(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	var wire wireLog
	r := subscribers(t, f, repo.WithClient(wire.client(f.env)))
	k := repo.Key{Hash: "SUB#1"}
	if err := r.Put(ctx, Subscriber{PK: "SUB#1", Email: "a@example.com"}); err != nil {
		t.Fatal(err)
	}

	before := r.Encryptor().Stats()
	_, err := r.Update(ctx, k, repo.NewUpdate().
		Set("ssn", "123-45-6789"). // a plain value: the repository seals it
		Set("phone", field.NewEncrypted("+47 555 01 234")).
		Set("email", "b@example.com"),
		// Not attribute_not_exists(ssn): Put wrote the absent ssn as NULL,
		// and a NULL attribute exists.
		repo.If(expression.Name("email").Equal(expression.Value("a@example.com"))))
	if err != nil {
		t.Fatal(err)
	}
	after := r.Encryptor().Stats()
	if n := after.GenerateDataKeyCalls - before.GenerateDataKeyCalls; n != 1 {
		t.Fatalf("%d GenerateDataKey calls for one update of two encrypted attributes, want 1", n)
	}
	if after.DecryptCalls != before.DecryptCalls {
		t.Fatal("an update without ReturnNew decrypted")
	}

	sent := wire.sent("UpdateItem")
	if len(sent) != 1 {
		t.Fatalf("%d UpdateItem requests, want 1", len(sent))
	}
	for _, secret := range []string{"123-45-6789", "+47 555 01 234"} {
		if strings.Contains(sent[0], secret) {
			t.Fatalf("UpdateItem request carries plaintext %q", secret)
		}
	}
	if !strings.Contains(sent[0], `"ENC:`) || !strings.Contains(sent[0], "b@example.com") {
		t.Fatalf("UpdateItem request lacks the sealed or the plain values: %s", sent[0])
	}

	raw := f.rawItem(t, r.Table(), subscriberKey("SUB#1"))
	for attr, secret := range map[string]string{"ssn": "123-45-6789", "phone": "+47 555 01 234"} {
		stored := storedString(t, raw, attr)
		if !enc.IsEncrypted(stored) || strings.Contains(stored, secret) {
			t.Fatalf("stored %s = %q", attr, stored)
		}
	}

	got, err := r.Get(ctx, k, repo.ConsistentRead())
	if err != nil {
		t.Fatal(err)
	}
	ssn, err1 := got.SSN.Value()
	phone, err2 := got.Phone.Value()
	if err := errors.Join(err1, err2); err != nil || ssn != "123-45-6789" || phone != "+47 555 01 234" || got.Email != "b@example.com" {
		t.Fatalf("read back ssn %q phone %q email %q, %v", ssn, phone, got.Email, err)
	}
	if d := r.Encryptor().Stats().DecryptCalls - after.DecryptCalls; d != 1 {
		t.Fatalf("%d Decrypt calls to open two values sealed under one data key, want 1", d)
	}

	// ReturnNew opens the new item.
	updated, err := r.Update(ctx, k, repo.NewUpdate().Set("ssn", "987-65-4321"), repo.ReturnNew())
	if err != nil {
		t.Fatal(err)
	}
	if ssn, err := updated.SSN.Value(); err != nil || ssn != "987-65-4321" {
		t.Fatalf("returned ssn %q, %v", ssn, err)
	}
	if strings.Contains(strings.Join(wire.sent("UpdateItem"), ""), "987-65-4321") {
		t.Fatal("second UpdateItem request carries plaintext")
	}
}

func TestUpdateConditionOnEncryptedValueRejected(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	var wire wireLog
	r := subscribers(t, f, repo.WithClient(wire.client(f.env)))
	k := repo.Key{Hash: "SUB#1"}

	for name, opt := range map[string]repo.WriteOption{
		"equal":       repo.If(expression.Name("ssn").Equal(expression.Value("123-45-6789"))),
		"begins_with": repo.If(expression.Name("ssn").BeginsWith("123")),
		"in":          repo.If(expression.Name("phone").In(expression.Value("a"), expression.Value("b"))),
	} {
		_, err := r.Update(ctx, k, repo.NewUpdate().Set("ssn", "123-45-6789"), opt)
		if !errors.Is(err, repo.ErrEncryptedComparison) {
			t.Fatalf("%s: err = %v, want ErrEncryptedComparison", name, err)
		}
		if err := r.Put(ctx, Subscriber{PK: "SUB#1", SSN: field.NewEncrypted("123-45-6789")}, opt); !errors.Is(err, repo.ErrEncryptedComparison) {
			t.Fatalf("%s: put: err = %v", name, err)
		}
		if err := r.Delete(ctx, k, opt); !errors.Is(err, repo.ErrEncryptedComparison) {
			t.Fatalf("%s: delete: err = %v", name, err)
		}
	}
	// Actions that cannot seal meaningfully.
	for _, upd := range []repo.Update{
		repo.NewUpdate().SetIfNotExists("ssn", "123-45-6789"),
		repo.NewUpdate().Append("ssn", "123-45-6789"),
		repo.NewUpdate().Add("ssn", "123-45-6789"),
		repo.NewUpdate().DeleteFromSet("ssn", []string{"123-45-6789"}),
	} {
		if _, err := r.Update(ctx, k, upd); !errors.Is(err, repo.ErrInvalidUpdate) {
			t.Fatalf("err = %v, want ErrInvalidUpdate", err)
		}
	}
	if n := len(wire.sent("UpdateItem")) + len(wire.sent("PutItem")) + len(wire.sent("DeleteItem")); n != 0 {
		t.Fatalf("%d requests sent for rejected writes", n)
	}
	if st := r.Encryptor().Stats(); st.GenerateDataKeyCalls != 0 {
		t.Fatalf("rejected writes made %d GenerateDataKey calls", st.GenerateDataKeyCalls)
	}

	// Existence checks are fine.
	if _, err := r.Update(ctx, k, repo.NewUpdate().Set("ssn", "123-45-6789"), repo.If(expression.Name("ssn").AttributeNotExists())); err != nil {
		t.Fatal(err)
	}
	_, err := r.Update(ctx, k, repo.NewUpdate().Set("ssn", "000-00-0000"), repo.If(expression.Name("ssn").AttributeNotExists()), repo.ReturnCurrentOnFailure())
	var cf *repo.ConditionFailedError[Subscriber]
	if !errors.As(err, &cf) {
		t.Fatalf("err = %v", err)
	}
	if f.env.Backend != "strict" { // dynalite: see TestPutIfNotExistsTwiceReturnsCurrentItem
		if ssn, _ := cf.Current.SSN.Value(); ssn != "123-45-6789" {
			t.Fatalf("current ssn %q", ssn)
		}
	}
}

func TestGetConsistentReadAndProjection(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	var wire wireLog
	r := users(t, f, repo.WithClient(wire.client(f.env)))
	if err := r.Put(ctx, User{PK: "USER#1", Email: "a@example.com", SSN: field.NewEncrypted("123-45-6789")}); err != nil {
		t.Fatal(err)
	}
	k := repo.Key{Hash: "USER#1"}

	got, err := r.Get(ctx, k, repo.ConsistentRead(), repo.Project("pk", "email"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Email != "a@example.com" || got.SSN.IsPresent() {
		t.Fatalf("projected item %+v (ssn present %v)", got, got.SSN.IsPresent())
	}
	if d := r.Encryptor().Stats().DecryptCalls; d != 0 {
		t.Fatalf("%d Decrypt calls for a projection without encrypted attributes", d)
	}
	sent := wire.sent("GetItem")
	if len(sent) != 1 || !strings.Contains(sent[0], `"ConsistentRead":true`) || !strings.Contains(sent[0], `"ProjectionExpression"`) {
		t.Fatalf("GetItem requests %q", sent)
	}

	got, err = r.Get(ctx, k, repo.Project("ssn"))
	if err != nil {
		t.Fatal(err)
	}
	if ssn, err := got.SSN.Value(); err != nil || ssn != "123-45-6789" || got.Email != "" {
		t.Fatalf("projected item email %q ssn %q, %v", got.Email, ssn, err)
	}
	if d := r.Encryptor().Stats().DecryptCalls; d != 1 {
		t.Fatalf("%d Decrypt calls, want 1", d)
	}
	if sent := wire.sent("GetItem"); strings.Contains(sent[1], `"ConsistentRead":true`) {
		t.Fatal("ConsistentRead sent without being asked for")
	}
}
