package repo

import (
	"context"
	"errors"
	"iter"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
)

type guarded struct {
	PK      string                    `dynamodbav:"pk" repo:"hash"`
	SSN     field.Encrypted[string]   `dynamodbav:"ssn" enc:"pii"`
	Address address                   `dynamodbav:"address"`
	Name    string                    `dynamodbav:"name"`
	Street  string                    `dynamodbav:"street"` // a plain name that is encrypted inside address
	Cards   []address                 `dynamodbav:"cards"`
	Wallet  map[string]address        `dynamodbav:"wallet"`
	Home    *address                  `dynamodbav:"home"`
	Grid    [][]address               `dynamodbav:"grid"`
	Phones  []field.Encrypted[string] `dynamodbav:"phones" enc:"pii"`
	Extra   map[string]any            `dynamodbav:"extra"`
}

type address struct {
	City   string                  `dynamodbav:"city"`
	Street field.Encrypted[string] `dynamodbav:"street" enc:"pii"`
}

func guardedRepo(t *testing.T, opts ...Option) *Repo[guarded] {
	t.Helper()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "k"})
	r, err := New[guarded]("t", append([]Option{WithRegistry(reg), WithEncryptor(enc.New(enctest.New()))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// guardCases are conditions on guarded, and whether the guard lets them pass.
var guardCases = []struct {
	name string
	cond expression.ConditionBuilder
	ok   bool
}{
	{"compare plain", expression.Name("name").Equal(expression.Value("x")), true},
	{"exists encrypted", expression.Name("ssn").AttributeExists(), true},
	{"not exists encrypted", expression.Name("ssn").AttributeNotExists(), true},
	{"compare encrypted", expression.Name("ssn").Equal(expression.Value("123")), false},
	{"begins_with encrypted", expression.Name("ssn").BeginsWith("ENC"), false},
	{"size of encrypted", expression.Name("ssn").Size().GreaterThan(expression.Value(3)), false},
	{"plain member of document", expression.Name("address.city").Equal(expression.Value("Oslo")), true},
	{"whole document", expression.Name("address").Equal(expression.Value(map[string]string{})), false},
	{"mixed", expression.Name("ssn").AttributeExists().And(expression.Name("ssn").NotEqual(expression.Value("a"))), false},

	{"nested encrypted equal", expression.Name("address.street").Equal(expression.Value("Main St")), false},
	{"nested encrypted begins_with", expression.Name("address.street").BeginsWith("M"), false},
	{"nested encrypted size", expression.Name("address.street").Size().LessThan(expression.Value(5)), false},
	{"nested encrypted in", expression.Name("address.street").In(expression.Value("a"), expression.Value("b")), false},
	{"nested encrypted between", expression.Name("address.street").Between(expression.Value("a"), expression.Value("b")), false},
	{"nested encrypted contains", expression.Contains(expression.Name("address.street"), "Main"), false},
	{"nested encrypted attribute_type", expression.Name("address.street").AttributeType(expression.String), false},
	{"nested encrypted exists", expression.Name("address.street").AttributeExists(), true},
	{"nested encrypted not exists", expression.Name("address.street").AttributeNotExists(), true},
	{"exists and compare", expression.Name("address.street").AttributeExists().And(expression.Name("address.street").Equal(expression.Value("x"))), false},
	{"plain top name that is encrypted in a document", expression.Name("street").Equal(expression.Value("x")).And(expression.Name("address.city").Equal(expression.Value("y"))), true},
	{"same name plain on top, encrypted nested", expression.Name("street").Equal(expression.Value("x")).And(expression.Name("address.street").Equal(expression.Value("y"))), false},

	{"list of documents, encrypted member", expression.Name("cards[0].street").In(expression.Value("a"), expression.Value("b")), false},
	{"list of documents, plain member", expression.Name("cards[0].city").Equal(expression.Value("Oslo")), true},
	{"list of documents, element", expression.Name("cards[1]").Equal(expression.Value(map[string]string{})), false},
	{"list of documents, size", expression.Name("cards").Size().GreaterThan(expression.Value(2)), false},
	{"list of documents, exists", expression.Name("cards[0].street").AttributeExists(), true},
	{"nested list index, encrypted member", expression.Name("grid[0][1].street").Equal(expression.Value("x")), false},
	{"nested list index, plain member", expression.Name("grid[0][1].city").Equal(expression.Value("x")), true},
	{"nested list index, row", expression.Name("grid[0]").Size().Equal(expression.Value(1)), false},
	{"map of documents, encrypted member", expression.Name("wallet.home.street").Equal(expression.Value("x")), false},
	{"map of documents, plain member", expression.Name("wallet.home.city").Equal(expression.Value("x")), true},
	{"pointer to document, encrypted member", expression.Name("home.street").BeginsWith("M"), false},
	{"pointer to document, plain member", expression.Name("home.city").BeginsWith("M"), true},
	{"list of encrypted, element", expression.Name("phones[1]").Equal(expression.Value("x")), false},
	{"list of encrypted, contains", expression.Contains(expression.Name("phones"), "x"), false},
	{"list of encrypted, element exists", expression.Name("phones[1]").AttributeExists(), true},
	{"into an encrypted value", expression.Name("ssn.x").Equal(expression.Value("x")), false},
	{"untyped document", expression.Name("extra.street").Equal(expression.Value("x")), true},
	{"unknown attribute", expression.Name("other.street").Equal(expression.Value("x")), true},
	{"compare two paths", expression.Name("address.city").Equal(expression.Name("home.street")), false},
}

func TestCheckExpression(t *testing.T) {
	r := guardedRepo(t)
	for _, c := range guardCases {
		t.Run(c.name, func(t *testing.T) {
			e, err := expression.NewBuilder().WithCondition(c.cond).Build()
			if err != nil {
				t.Fatal(err)
			}
			err = r.checkExpression("condition", e.Condition(), e.Names())
			if c.ok && err != nil {
				t.Fatalf("rejected %s: %v", *e.Condition(), err)
			}
			if !c.ok && !errors.Is(err, ErrEncryptedComparison) {
				t.Fatalf("accepted %s (err %v)", *e.Condition(), err)
			}
		})
	}
}

func TestCheckExpressionNamesThePath(t *testing.T) {
	r := guardedRepo(t)
	e, err := expression.NewBuilder().WithCondition(expression.Name("grid[0][1].street").Equal(expression.Value("Main St"))).Build()
	if err != nil {
		t.Fatal(err)
	}
	err = r.checkExpression("filter", e.Condition(), e.Names())
	if !errors.Is(err, ErrEncryptedComparison) || !strings.Contains(err.Error(), `"grid[0][1].street"`) || strings.Contains(err.Error(), "Main St") {
		t.Fatalf("err = %v, want ErrEncryptedComparison naming grid[0][1].street and not the value", err)
	}
}

// countingDB fails the test on any request: the guard must stop it first.
type countingDB struct {
	API
	calls atomic.Int32
}

func (c *countingDB) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.calls.Add(1)
	return &dynamodb.PutItemOutput{}, nil
}

func (c *countingDB) DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	c.calls.Add(1)
	return &dynamodb.DeleteItemOutput{}, nil
}

func (c *countingDB) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.calls.Add(1)
	return &dynamodb.UpdateItemOutput{}, nil
}

func (c *countingDB) Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.calls.Add(1)
	return &dynamodb.QueryOutput{}, nil
}

func (c *countingDB) Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	c.calls.Add(1)
	return &dynamodb.ScanOutput{}, nil
}

func TestNestedEncryptedComparisonsAreRejectedBeforeAnyRequest(t *testing.T) {
	ctx := context.Background()
	db := &countingDB{}
	r := guardedRepo(t, WithClient(db))
	key := expression.Key("pk").Equal(expression.Value("A"))
	for _, c := range guardCases {
		if c.ok {
			continue
		}
		calls := map[string]func() error{
			"put":    func() error { return r.Put(ctx, guarded{PK: "A"}, If(c.cond)) },
			"delete": func() error { return r.Delete(ctx, Key{Hash: "A"}, If(c.cond)) },
			"update": func() error {
				_, err := r.Update(ctx, Key{Hash: "A"}, NewUpdate().Set("name", "x"), If(c.cond))
				return err
			},
			"query filter": func() error { return firstError(r.Query(ctx, key, Filter(c.cond))) },
			"scan filter":  func() error { return firstError(r.Scan(ctx, Filter(c.cond))) },
		}
		for op, call := range calls {
			if err := call(); !errors.Is(err, ErrEncryptedComparison) {
				t.Errorf("%s, %s: err = %v, want ErrEncryptedComparison", c.name, op, err)
			}
		}
	}
	if n := db.calls.Load(); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
	// The allowed ones do go out.
	if err := firstError(r.Scan(ctx, Filter(expression.Name("cards[0].city").Equal(expression.Value("Oslo"))))); err != nil {
		t.Fatalf("plain member rejected: %v", err)
	}
	if err := firstError(r.Query(ctx, key, Filter(expression.Name("wallet.home.street").AttributeExists()))); err != nil {
		t.Fatalf("existence check rejected: %v", err)
	}
	if n := db.calls.Load(); n != 2 {
		t.Fatalf("%d requests sent for 2 allowed reads", n)
	}
}

func firstError[T any](seq iter.Seq2[T, error]) error {
	for _, err := range seq {
		if err != nil {
			return err
		}
	}
	return nil
}

func TestReadOptionsRejectKnobsAnOperationDoesNotTake(t *testing.T) {
	if _, err := readOptions("Get", 0, []ReadOption{Index("gsi1")}); err == nil {
		t.Fatal("Get accepted an index")
	}
	if _, err := readOptions("Get", 0, []ReadOption{Limit(3)}); err == nil {
		t.Fatal("Get accepted a limit")
	}
	o, err := readOptions("Query", knobFilter|knobIndex|knobOrder|knobLimit|knobProject, []ReadOption{Index("gsi1"), Limit(3), ConsistentRead(), Project("a", "b")})
	if err != nil || o.Index != "gsi1" || o.Limit != 3 || !o.ConsistentRead || len(o.Projection) != 2 {
		t.Fatalf("Query options %+v, %v", o, err)
	}
	if _, err := readOptions("Scan", knobLimit, []ReadOption{Limit(-1)}); err == nil {
		t.Fatal("negative limit accepted")
	}
}
