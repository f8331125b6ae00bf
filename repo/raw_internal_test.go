package repo

import (
	"context"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
)

type rawAddress struct {
	City string                  `dynamodbav:"city"`
	Zip  field.Encrypted[string] `dynamodbav:"zip" enc:"p"`
}

type RawEmbedded struct {
	Secret field.Encrypted[string] `dynamodbav:"secret" enc:"p"`
}

type rawItem struct {
	PK string `dynamodbav:"pk" repo:"hash"`
	*RawEmbedded
	SSN   field.Encrypted[string]              `dynamodbav:"ssn" enc:"p"`
	Cards []field.Encrypted[string]            `dynamodbav:"cards" enc:"p"`
	Home  *rawAddress                          `dynamodbav:"home"`
	Past  []rawAddress                         `dynamodbav:"past"`
	Tags  map[string]field.Encrypted[string]   `dynamodbav:"tags" enc:"p"`
	Odd   map[string]field.Encrypted[string]   `dynamodbav:"odd.name" enc:"p"`
	Nums  [2]field.Encrypted[int64]            `dynamodbav:"nums" enc:"p"`
	Deep  map[string][]field.Encrypted[[]byte] `dynamodbav:"deep" enc:"p"`
}

// The raw walk finds exactly the values the walker over a T finds, at the
// same paths and bound paths: version-2 bindings depend on it.
func TestRawValuesMatchTheWalker(t *testing.T) {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("p", enc.Spec{KeyID: "k", Version: enc.Version2})
	r, err := New[rawItem]("t", WithRegistry(reg), WithEncryptor(enc.New(enctest.New())))
	if err != nil {
		t.Fatal(err)
	}
	e := field.NewEncrypted[string]
	item := rawItem{PK: "A", RawEmbedded: &RawEmbedded{Secret: e("s")}, SSN: e("1"), Cards: []field.Encrypted[string]{e("c0"), e("c1")},
		Home: &rawAddress{City: "x", Zip: e("z")}, Past: []rawAddress{{Zip: e("p0")}, {City: "y"}},
		Tags: map[string]field.Encrypted[string]{"home": e("h"), "a.b[0]": e("q")}, Odd: map[string]field.Encrypted[string]{"k": e("o")},
		Nums: [2]field.Encrypted[int64]{field.NewEncrypted[int64](1), field.NewEncrypted[int64](2)},
		Deep: map[string][]field.Encrypted[[]byte]{"d": {field.NewEncrypted([]byte{1})}}}
	m, err := r.Marshal(ctx, item)
	if err != nil {
		t.Fatal(err)
	}
	var raw []string
	r.plan.rawValues(m, func(v rawValue) {
		if isNull(v.av) { // past[1].zip, an absent value inside a document
			return
		}
		if !sealedForm(v.av) {
			t.Errorf("%s: not sealed", v.path)
		}
		raw = append(raw, v.path+" | "+v.bound+" | "+stepsText(v.steps))
	})
	var loaded rawItem
	if err := attributevalue.UnmarshalMap(m, &loaded); err != nil {
		t.Fatal(err)
	}
	var walked []string
	w := walker{visit: func(fd found) error {
		if _, ok := fd.cell.Stored(); ok {
			walked = append(walked, fd.path+" | "+fd.bound)
		}
		return nil
	}}
	if err := w.walkStruct(reflect.ValueOf(&loaded).Elem(), r.plan.root, "", ""); err != nil {
		t.Fatal(err)
	}
	slices.Sort(walked)
	var rawPaths []string
	for _, s := range raw {
		rawPaths = append(rawPaths, s[:strings.LastIndex(s, " | ")])
	}
	slices.Sort(rawPaths)
	if !slices.Equal(rawPaths, walked) || len(walked) != 12 {
		t.Fatalf("raw walk found\n%s\nthe walker\n%s", strings.Join(rawPaths, "\n"), strings.Join(walked, "\n"))
	}
	for _, want := range []string{`home.zip | home.zip | home/zip`, `past[0].zip | past[].zip | past/0/zip`, `odd.name.k | ["odd.name"]["k"] | odd.name/k`, `tags.a.b[0] | tags["a.b[0]"] | tags/a.b[0]`} {
		if !slices.Contains(raw, want) {
			t.Errorf("no value %q among\n%s", want, strings.Join(raw, "\n"))
		}
	}
}

func stepsText(steps []rawStep) string {
	var parts []string
	for _, s := range steps {
		if s.index >= 0 {
			parts = append(parts, strconv.Itoa(s.index))
		} else {
			parts = append(parts, s.name)
		}
	}
	return strings.Join(parts, "/")
}

// A migration's update sets each value at its path with placeholders for
// every name, and requires the old value and the context attributes.
func TestMigrationUpdate(t *testing.T) {
	reg := enc.NewRegistry()
	reg.MustRegister("p", enc.Spec{KeyID: "k", ContextFrom: map[string]string{"tenant": "org"}})
	type item struct {
		PK      string                             `dynamodbav:"pk" repo:"hash"`
		Org     string                             `dynamodbav:"org"`
		Tags    map[string]field.Encrypted[string] `dynamodbav:"tags" enc:"p"`
		Version int                                `dynamodbav:"v" repo:"version"`
	}
	r, err := New[item]("t", WithRegistry(reg), WithEncryptor(enc.New(enctest.New())))
	if err != nil {
		t.Fatal(err)
	}
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	raw := attrMap{"pk": s("A"), "org": s("acme"), "tags": &types.AttributeValueMemberM{Value: attrMap{"a.b": s("plain")}}}
	var it migrant
	it.raw = raw
	r.plan.rawValues(raw, func(v rawValue) {
		spec := v.cell.spec
		it.changes = append(it.changes, change{v: v, spec: &spec, to: s("ENC:new")})
	})
	in := r.migrationUpdate(&it)
	got := resolve(*in.UpdateExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues) + " IF " +
		resolve(*in.ConditionExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues)
	want := `SET <tags>.<a.b> = "ENC:new" ADD <v> 1 IF <tags>.<a.b> = "plain" AND <org> = "acme"`
	if got != want {
		t.Fatalf("update\n %s\nwant\n %s", got, want)
	}
}

func resolve(expr string, names map[string]string, values map[string]types.AttributeValue) string {
	for ph, n := range names {
		expr = strings.ReplaceAll(expr, ph, "<"+n+">")
	}
	for ph, v := range values {
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			expr = strings.ReplaceAll(expr, ph, `"`+v.Value+`"`)
		case *types.AttributeValueMemberN:
			expr = strings.ReplaceAll(expr, ph, v.Value)
		}
	}
	return expr
}
