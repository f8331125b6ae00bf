package avfields

import (
	"reflect"
	"strings"
	"testing"
)

type inner struct{ ID string }
type left struct{ inner }
type right struct{ inner }
type named string

type sample struct {
	PK      string `dynamodbav:"pk"`
	Skipped string `dynamodbav:"-"`
	hidden  string
	left
	right
	Shadow string `dynamodbav:"ID"`
}

type unusable struct {
	named
}

func TestOfFollowsAttributevalue(t *testing.T) {
	fields, hidden := Of(reflect.TypeFor[sample]())
	var names []string
	for _, f := range fields {
		names = append(names, f.Name+"="+f.GoName)
	}
	// The tagged top-level ID shadows the embedded ones.
	if got := strings.Join(names, " "); got != "pk=sample.PK ID=sample.Shadow" {
		t.Fatalf("fields %s", got)
	}
	why := map[string]string{}
	for _, h := range hidden {
		why[h.GoName] = h.Why
	}
	for name, want := range map[string]string{
		"sample.Skipped": `dynamodbav:"-"`,
		"sample.hidden":  "unexported",
		// inner is enumerated once, through the first path that reaches it.
		"sample.left.inner.ID": "taken by sample.Shadow",
	} {
		if !strings.Contains(why[name], want) {
			t.Errorf("%s: %q, want it to say %q", name, why[name], want)
		}
	}
	_ = sample{}.hidden
}

func TestOfDropsATypeEmbeddedTwice(t *testing.T) {
	type twice struct {
		left
		right
	}
	fields, hidden := Of(reflect.TypeFor[twice]())
	if len(fields) != 0 || len(hidden) == 0 || !strings.Contains(hidden[0].Why, "embedded more than once") {
		t.Fatalf("fields %v, hidden %+v", fields, hidden)
	}
	_ = unusable{}.named
	if _, hidden := Of(reflect.TypeFor[unusable]()); len(hidden) != 1 || !hidden[0].Unusable {
		t.Fatalf("an unexported embedded non-struct: %+v", hidden)
	}
}
