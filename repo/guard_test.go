package repo

import (
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
)

type guarded struct {
	PK      string                  `dynamodbav:"pk" repo:"hash"`
	SSN     field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
	Address address                 `dynamodbav:"address"`
	Name    string                  `dynamodbav:"name"`
}

type address struct {
	City   string                  `dynamodbav:"city"`
	Street field.Encrypted[string] `dynamodbav:"street" enc:"pii"`
}

func TestCheckExpression(t *testing.T) {
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "k"})
	r, err := New[guarded]("t", WithRegistry(reg), WithEncryptor(enc.New(enctest.New())))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
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
	}
	for _, c := range cases {
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

func TestReadOptionsRejectKnobsAnOperationDoesNotTake(t *testing.T) {
	if _, err := readOptions("Get", 0, []ReadOption{Index("gsi1")}); err == nil {
		t.Fatal("Get accepted an index")
	}
	if _, err := readOptions("Get", 0, []ReadOption{Limit(3)}); err == nil {
		t.Fatal("Get accepted a limit")
	}
	o, err := readOptions("Query", knobFilter|knobIndex|knobOrder|knobLimit, []ReadOption{Index("gsi1"), Limit(3), ConsistentRead(), Project("a", "b")})
	if err != nil || o.Index != "gsi1" || o.Limit != 3 || !o.ConsistentRead || len(o.Projection) != 2 {
		t.Fatalf("Query options %+v, %v", o, err)
	}
	if _, err := readOptions("Scan", knobLimit, []ReadOption{Limit(-1)}); err == nil {
		t.Fatal("negative limit accepted")
	}
}
