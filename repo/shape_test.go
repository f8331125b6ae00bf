package repo_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/repo"
)

// The shape tests hold the repository to attributevalue's way of finding a
// struct's attributes: for each shape, Marshal gives exactly what
// attributevalue.MarshalMapWithOptions gives (with OmitNullAttributeValues,
// as the repository documents for `omitempty`), and Unmarshal of that map
// gives exactly what attributevalue.UnmarshalMap gives. Shapes whose hash
// key attributevalue would drop are refused by New, naming the field.

// shapeCase is one struct shape.
type shapeCase struct {
	name string
	run  func(t *testing.T)
}

func shapeOmitNull(o *attributevalue.EncoderOptions) { o.OmitNullAttributeValues = true }

// shape checks that T's repository marshals and unmarshals item as
// attributevalue does.
func shape[T any](name string, item T) shapeCase {
	return shapeCase{name: name, run: func(t *testing.T) {
		ctx := context.Background()
		r, err := repo.New[T]("shapes", repo.WithRegistry(enc.NewRegistry()), repo.WithEncryptor(enc.New(enctest.New())))
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		want, wantErr := attributevalue.MarshalMapWithOptions(item, shapeOmitNull)
		got, gotErr := r.Marshal(ctx, item)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("Marshal error %v; attributevalue's %v", gotErr, wantErr)
		}
		if wantErr != nil {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Marshal gives\n\t%s\nattributevalue gives\n\t%s", shapeDescribe(got), shapeDescribe(want))
		}
		var wantBack T
		wantErr = attributevalue.UnmarshalMap(want, &wantBack)
		gotBack, gotErr := r.Unmarshal(ctx, want)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("Unmarshal error %v; attributevalue's %v", gotErr, wantErr)
		}
		if wantErr == nil && !reflect.DeepEqual(gotBack, wantBack) {
			t.Fatalf("Unmarshal gives\n\t%+v\nattributevalue gives\n\t%+v", gotBack, wantBack)
		}
	}}
}

// refused checks that New refuses T with an error holding every one of
// want, after checking that attributevalue really drops the hash key
// attribute (key) of item.
func refused[T any](name string, item T, key string, want ...string) shapeCase {
	return shapeCase{name: name, run: func(t *testing.T) {
		m, err := attributevalue.MarshalMapWithOptions(item, shapeOmitNull)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m[key]; ok {
			t.Fatalf("attributevalue gives %s; the case expects it to drop %q", shapeDescribe(m), key)
		}
		_, err = repo.New[T]("shapes", repo.WithRegistry(enc.NewRegistry()), repo.WithEncryptor(enc.New(enctest.New())))
		if err == nil {
			t.Fatalf("New accepted a hash key that attributevalue drops (it gives %s)", shapeDescribe(m))
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("New's error %q does not contain %q", err, w)
			}
		}
	}}
}

// unsupported is a shape attributevalue itself panics on (when marshalling
// or when unmarshalling av). The repository must not: either New refuses it,
// naming the field goName, or Marshal and Unmarshal return without panicking
// (with a result or an error).
func unsupported[T any](name string, item T, av map[string]types.AttributeValue, goName string) shapeCase {
	return shapeCase{name: name, run: func(t *testing.T) {
		ctx := context.Background()
		r, err := repo.New[T]("shapes", repo.WithRegistry(enc.NewRegistry()), repo.WithEncryptor(enc.New(enctest.New())))
		if err != nil {
			if !strings.Contains(err.Error(), goName) {
				t.Fatalf("New's error %q does not name %s", err, goName)
			}
			return
		}
		for op, call := range map[string]func() error{
			"Marshal":   func() error { _, err := r.Marshal(ctx, item); return err },
			"Unmarshal": func() error { _, err := r.Unmarshal(ctx, av); return err },
		} {
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Errorf("%s panics: %v", op, p)
					}
				}()
				_ = call()
			}()
		}
	}}
}

func shapeDescribe(m map[string]types.AttributeValue) string {
	return describeAV(&types.AttributeValueMemberM{Value: m})
}

// Building blocks.

type ShapeBase struct {
	PK      string `dynamodbav:"pk" repo:"hash"`
	Created int64  `dynamodbav:"created"`
}

type shapeBase struct {
	PK    string `dynamodbav:"pk" repo:"hash"`
	Count int    `dynamodbav:"count"`
}

type ShapeExtra struct {
	Note  string `dynamodbav:"note"`
	Score float64
}

type shapeExtra struct {
	Note string
	Rank int `dynamodbav:"rank"`
}

type ShapeTaggedLabel struct {
	Alias string `dynamodbav:"Label"`
}

type ShapeTaggedLabel2 struct {
	Other string `dynamodbav:"Label"`
}

type ShapeUntaggedLabel struct {
	Label string
}

type ShapeUntaggedLabel2 struct {
	Label string
}

type ShapeLeaf struct {
	Leaf   string
	Weight int `dynamodbav:"weight"`
}

type ShapeLeafAlias = ShapeLeaf

type ShapeLeafWrap struct{ ShapeLeaf }

type ShapeLeafWrap2 struct{ ShapeLeaf }

type ShapeKey struct {
	PK string `dynamodbav:"pk" repo:"hash"`
}

type ShapeKeyAlias = ShapeKey

type ShapeKeyWrapA struct{ ShapeKey }

type ShapeKeyWrapB struct{ ShapeKey }

type ShapeKeyUntagged struct {
	PK string `repo:"hash"`
}

type ShapeOtherPK struct {
	PK string
}

type ShapeKeyTagged struct {
	ID string `dynamodbav:"PK" repo:"hash"`
}

type ShapeTag string

type ShapeNums []int

type shapeNote string

// The shapes.

type shapeEmbedded struct {
	ShapeBase
	Name string `dynamodbav:"name"`
}

type shapeEmbeddedPtr struct {
	*ShapeBase
	Name string `dynamodbav:"name"`
}

type shapeNilEmbeddedPtr struct {
	PK string `dynamodbav:"pk" repo:"hash"`
	*ShapeExtra
}

type shapeUnexportedEmbedded struct {
	shapeBase
	Name string `dynamodbav:"name"`
}

type shapeUnexportedEmbeddedPlain struct {
	PK string `dynamodbav:"pk" repo:"hash"`
	shapeExtra
}

type shapeUnexportedEmbeddedPtr struct {
	PK string `dynamodbav:"pk" repo:"hash"`
	*shapeExtra
}

type shapeNamedEmbedded struct {
	PK         string `dynamodbav:"pk" repo:"hash"`
	ShapeExtra `dynamodbav:"extra"`
}

type shapeSkippedEmbedded struct {
	PK         string `dynamodbav:"pk" repo:"hash"`
	ShapeExtra `dynamodbav:"-"`
	Name       string `dynamodbav:"name"`
}

type shapeTaggedWins struct {
	PK string `dynamodbav:"pk" repo:"hash"`
	ShapeTaggedLabel
	ShapeUntaggedLabel
}

type shapeTwoTagged struct {
	PK string `dynamodbav:"pk" repo:"hash"`
	ShapeTaggedLabel
	ShapeTaggedLabel2
}

type shapeTwoUntagged struct {
	PK string `dynamodbav:"pk" repo:"hash"`
	ShapeUntaggedLabel
	ShapeUntaggedLabel2
}

type shapeShallowWins struct {
	PK    string `dynamodbav:"pk" repo:"hash"`
	Label string
	ShapeTaggedLabel
}

type shapeShallowTaggedWins struct {
	PK   string `dynamodbav:"pk" repo:"hash"`
	Name string `dynamodbav:"Label"`
	ShapeUntaggedLabel
}

type shapeTwiceAtDepth1 struct {
	PK string `dynamodbav:"pk" repo:"hash"`
	ShapeLeaf
	ShapeLeafAlias
}

type shapeTwiceAtDepth1ByPointer struct {
	PK string `dynamodbav:"pk" repo:"hash"`
	ShapeLeaf
	*ShapeLeafAlias
}

type shapeAtDepth1And2 struct {
	PK string `dynamodbav:"pk" repo:"hash"`
	ShapeLeaf
	ShapeLeafWrap
}

type shapeTwiceAtDepth2 struct {
	PK string `dynamodbav:"pk" repo:"hash"`
	ShapeLeafWrap
	ShapeLeafWrap2
}

type shapeDash struct {
	PK     string `dynamodbav:"pk" repo:"hash"`
	Name   string `dynamodbav:"name"`
	Secret string `dynamodbav:"-"`
}

type shapeOmitEmpty struct {
	PK    string            `dynamodbav:"pk" repo:"hash"`
	Nick  string            `dynamodbav:"nick,omitempty"`
	Tags  []string          `dynamodbav:"tags,omitempty"`
	Meta  map[string]string `dynamodbav:"meta,omitempty"`
	Ptr   *int              `dynamodbav:"ptr,omitempty"`
	Count int               `dynamodbav:"count,omitempty"`
	Plain *string           `dynamodbav:"plain"`
	Kept  string            `dynamodbav:"kept,omitempty"`
}

type shapeAsString struct {
	PK    string  `dynamodbav:"pk" repo:"hash"`
	Count int     `dynamodbav:"count,string"`
	Big   uint64  `dynamodbav:"big,string"`
	Ratio float64 `dynamodbav:"ratio,string"`
}

type shapeEmbeddedNonStruct struct {
	PK string `dynamodbav:"pk" repo:"hash"`
	ShapeTag
	ShapeNums
}

type shapeEmbeddedNonStructTagged struct {
	PK       string `dynamodbav:"pk" repo:"hash"`
	ShapeTag `dynamodbav:"tag"`
}

type shapeEmbeddedUnexportedNonStruct struct {
	PK string `dynamodbav:"pk" repo:"hash"`
	shapeNote
}

type shapeUnexportedField struct {
	PK     string `dynamodbav:"pk" repo:"hash"`
	Name   string `dynamodbav:"name"`
	hidden string
}

var _ = shapeUnexportedField{hidden: "unused"}

type shapeKeyTaggedWins struct {
	ShapeKeyTagged
	ShapeOtherPK
	Name string `dynamodbav:"name"`
}

type shapeKeyTwiceAtDepth1 struct {
	ShapeKey
	ShapeKeyAlias
	Name string `dynamodbav:"name"`
}

type shapeKeyTwiceAtDepth2 struct {
	ShapeKeyWrapA
	ShapeKeyWrapB
	Name string `dynamodbav:"name"`
}

type shapeKeyClash struct {
	ShapeKeyUntagged
	ShapeOtherPK
	Name string `dynamodbav:"name"`
}

type shapeKeyShadowed struct {
	Top string `dynamodbav:"pk"`
	ShapeKey
}

func TestShapeConformance(t *testing.T) {
	three := 3
	word := "w"
	cases := []shapeCase{
		shape("embedded struct", shapeEmbedded{ShapeBase{"p1", 7}, "n"}),
		shape("embedded pointer to struct", shapeEmbeddedPtr{&ShapeBase{"p1", 7}, "n"}),
		shape("embedded nil pointer to struct", shapeNilEmbeddedPtr{PK: "p1"}),
		shape("embedded pointer to struct, set", shapeNilEmbeddedPtr{"p1", &ShapeExtra{"x", 1.5}}),
		shape("unexported embedded struct holding the key", shapeUnexportedEmbedded{shapeBase{"p1", 3}, "n"}),
		shape("unexported embedded struct", shapeUnexportedEmbeddedPlain{"p1", shapeExtra{"x", 2}}),
		unsupported("unexported embedded pointer to struct", shapeUnexportedEmbeddedPtr{"p1", &shapeExtra{"x", 2}},
			map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "p1"}, "Note": &types.AttributeValueMemberS{Value: "x"}},
			"shapeExtra"),
		shape("embedded struct with an attribute name", shapeNamedEmbedded{"p1", ShapeExtra{"x", 1.5}}),
		shape(`embedded struct with dynamodbav:"-"`, shapeSkippedEmbedded{"p1", ShapeExtra{"x", 1.5}, "n"}),
		shape("tagged beats untagged at the same depth", shapeTaggedWins{"p1", ShapeTaggedLabel{"tagged"}, ShapeUntaggedLabel{"untagged"}}),
		shape("two tagged at the same depth are dropped", shapeTwoTagged{"p1", ShapeTaggedLabel{"a"}, ShapeTaggedLabel2{"b"}}),
		shape("two untagged at the same depth are dropped", shapeTwoUntagged{"p1", ShapeUntaggedLabel{"a"}, ShapeUntaggedLabel2{"b"}}),
		shape("shallower untagged beats deeper tagged", shapeShallowWins{"p1", "top", ShapeTaggedLabel{"deep"}}),
		shape("shallower tagged beats deeper untagged", shapeShallowTaggedWins{"p1", "top", ShapeUntaggedLabel{"deep"}}),
		shape("same type embedded twice at depth 1", shapeTwiceAtDepth1{"p1", ShapeLeaf{"a", 1}, ShapeLeafAlias{"b", 2}}),
		shape("same type embedded twice at depth 1, once by pointer", shapeTwiceAtDepth1ByPointer{"p1", ShapeLeaf{"a", 1}, &ShapeLeafAlias{"b", 2}}),
		shape("same type embedded at depth 1 and 2", shapeAtDepth1And2{"p1", ShapeLeaf{"a", 1}, ShapeLeafWrap{ShapeLeaf{"b", 2}}}),
		shape("same type embedded twice at depth 2", shapeTwiceAtDepth2{"p1", ShapeLeafWrap{ShapeLeaf{"a", 1}}, ShapeLeafWrap2{ShapeLeaf{"b", 2}}}),
		shape(`dynamodbav:"-"`, shapeDash{"p1", "n", "s"}),
		shape("omitempty, empty", shapeOmitEmpty{PK: "p1"}),
		shape("omitempty, set", shapeOmitEmpty{"p1", "nick", []string{"a"}, map[string]string{"k": "v"}, &three, 3, &word, "kept"}),
		shape(",string", shapeAsString{"p1", -42, 1 << 63, 0.25}),
		shape("embedded non-struct named types", shapeEmbeddedNonStruct{"p1", "tag", ShapeNums{1, 2}}),
		shape("embedded non-struct named type with an attribute name", shapeEmbeddedNonStructTagged{"p1", "tag"}),
		unsupported("unexported embedded non-struct named type", shapeEmbeddedUnexportedNonStruct{"p1", "note"},
			map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "p1"}, "shapeNote": &types.AttributeValueMemberS{Value: "note"}},
			"shapeNote"),
		shape("unexported field", shapeUnexportedField{"p1", "n", "h"}),
		shape("hash key tagged beats untagged at the same depth", shapeKeyTaggedWins{ShapeKeyTagged{"p1"}, ShapeOtherPK{"other"}, "n"}),
		refused("hash key in a type embedded twice at depth 1", shapeKeyTwiceAtDepth1{ShapeKey{"a"}, ShapeKeyAlias{"b"}, "n"}, "pk", "PK"),
		refused("hash key in a type embedded twice at depth 2", shapeKeyTwiceAtDepth2{ShapeKeyWrapA{ShapeKey{"a"}}, ShapeKeyWrapB{ShapeKey{"b"}}, "n"}, "pk", "PK"),
		refused("hash key clashing with an untagged field at the same depth", shapeKeyClash{ShapeKeyUntagged{"a"}, ShapeOtherPK{"b"}, "n"}, "PK", "PK"),
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("panic: %v", p)
				}
			}()
			c.run(t)
		})
	}
	t.Run("hash key shadowed by a shallower field", func(t *testing.T) {
		// attributevalue keeps the shallower pk, so the field tagged as
		// the hash key is not what is stored under pk.
		m, err := attributevalue.MarshalMap(shapeKeyShadowed{"top", ShapeKey{"deep"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := describeAV(m["pk"]); got != `"top"` {
			t.Fatalf("attributevalue stores pk %s; the case expects the shallower field", got)
		}
		_, err = repo.New[shapeKeyShadowed]("shapes", repo.WithRegistry(enc.NewRegistry()), repo.WithEncryptor(enc.New(enctest.New())))
		if err == nil || !strings.Contains(err.Error(), "PK") {
			t.Fatalf("New: %v; want an error naming PK, the hash key attributevalue drops", err)
		}
	})
}
