package repo

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
)

type keyedByString struct {
	ID  int64 `dynamodbav:"id,string" repo:"hash"`
	Seq uint8 `dynamodbav:"seq" repo:"range"`
}

// A key value marshals as its field does in an item, options included, so
// Get finds what Put wrote.
func TestKeyValuesMarshalLikeTheirFields(t *testing.T) {
	r, err := New[keyedByString]("t", WithRegistry(enc.NewRegistry()), WithEncryptor(enc.New(enctest.New())))
	if err != nil {
		t.Fatal(err)
	}
	item, err := r.Marshal(context.Background(), keyedByString{ID: 42, Seq: 7})
	if err != nil {
		t.Fatal(err)
	}
	km, err := r.keyMap(Key{Hash: 42, Range: 7}) // untyped constants: int
	if err != nil {
		t.Fatal(err)
	}
	for _, attr := range []string{"id", "seq"} {
		if !attributesEqual(item[attr], km[attr]) {
			t.Fatalf("%s: key gives %#v, the item holds %#v", attr, km[attr], item[attr])
		}
	}
	if _, ok := km["id"].(*types.AttributeValueMemberS); !ok {
		t.Fatalf(`",string" key marshalled as %#v`, km["id"])
	}

	for name, k := range map[string]Key{
		"string for a number": {Hash: "42", Range: 7},
		"fraction for an int": {Hash: 1.5, Range: 7},
		"overflowing uint8":   {Hash: 1, Range: 300},
		"negative for uint8":  {Hash: 1, Range: -1},
	} {
		if _, err := r.keyMap(k); err == nil || !strings.Contains(err.Error(), "does not fit") {
			t.Errorf("%s: err = %v, want a type mismatch", name, err)
		}
	}
}

func attributesEqual(a, b types.AttributeValue) bool {
	switch x := a.(type) {
	case *types.AttributeValueMemberS:
		y, ok := b.(*types.AttributeValueMemberS)
		return ok && x.Value == y.Value
	case *types.AttributeValueMemberN:
		y, ok := b.(*types.AttributeValueMemberN)
		return ok && x.Value == y.Value
	}
	return false
}

func TestKeyAttributeTypeFollowsOptions(t *testing.T) {
	r, err := New[keyedByString]("t", WithRegistry(enc.NewRegistry()), WithEncryptor(enc.New(enctest.New())))
	if err != nil {
		t.Fatal(err)
	}
	if at, err := attributeType(r.plan.hash); err != nil || at != types.ScalarAttributeTypeS {
		t.Fatalf(`",string" int64 key: %v, %v; want S`, at, err)
	}
	if at, err := attributeType(r.plan.rng); err != nil || at != types.ScalarAttributeTypeN {
		t.Fatalf("uint8 key: %v, %v; want N", at, err)
	}
}
