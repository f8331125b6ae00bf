package integration

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/dynotest"
	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// Issue declares its indexes in its tags: by-status (status, opened) and
// a sparse by-assignee, both global, and a local by-opened.
type Issue struct {
	Project  string                  `dynamodbav:"project" repo:"hash"`
	Number   int                     `dynamodbav:"number" repo:"range"`
	Status   string                  `dynamodbav:"status" repo:"gsi:by-status:hash"`
	Opened   int64                   `dynamodbav:"opened" repo:"gsi:by-status:range,lsi:by-opened:range"`
	Assignee string                  `dynamodbav:"assignee,omitempty" repo:"gsi:by-assignee:hash"`
	Region   string                  `dynamodbav:"region"`
	Secret   field.Encrypted[string] `dynamodbav:"secret" enc:"bound"`
	Note     string                  `dynamodbav:"note"`
}

func TestDeclaredIndexesAreCreatedAndQueried(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Version 2 binds secrets to the item's key, and the context to region:
	// reading one from an index needs both there.
	f.reg.MustRegister("bound", enc.Spec{KeyID: f.alias, Version: enc.Version2, ContextFrom: map[string]string{"region": "region"}})
	r := dynotest.Table[Issue](t, f.env, repo.WithRegistry(f.reg),
		repo.WithIndexProjection("by-assignee", "secret"),
		repo.WithIndexProjection("by-opened"))

	d, err := r.DescribeTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gsis := map[string]types.GlobalSecondaryIndexDescription{}
	for _, g := range d.GlobalSecondaryIndexes {
		gsis[aws.ToString(g.IndexName)] = g
	}
	if p := gsis["by-status"].Projection; p == nil || p.ProjectionType != types.ProjectionTypeAll {
		t.Errorf("by-status projection: %+v", p)
	}
	if p := gsis["by-assignee"].Projection; p == nil || p.ProjectionType != types.ProjectionTypeInclude ||
		!slices.Equal(slices.Sorted(slices.Values(p.NonKeyAttributes)), []string{"region", "secret"}) {
		t.Errorf("by-assignee projection: %+v", p)
	}
	if len(d.LocalSecondaryIndexes) != 1 || aws.ToString(d.LocalSecondaryIndexes[0].IndexName) != "by-opened" ||
		d.LocalSecondaryIndexes[0].Projection.ProjectionType != types.ProjectionTypeKeysOnly {
		t.Errorf("local indexes: %+v", d.LocalSecondaryIndexes)
	}
	if len(d.AttributeDefinitions) != 5 {
		t.Errorf("%d attribute definitions, want 5 (project, number, opened, assignee, status)", len(d.AttributeDefinitions))
	}

	issues := []Issue{
		{Project: "P", Number: 1, Status: "open", Opened: 30, Assignee: "ann", Region: "eu", Note: "a"},
		{Project: "P", Number: 2, Status: "open", Opened: 10, Region: "us", Note: "b"},
		{Project: "P", Number: 3, Status: "closed", Opened: 20, Assignee: "ann", Region: "us", Note: "c"},
	}
	for i := range issues {
		issues[i].Secret = field.NewEncrypted("secret " + issues[i].Note)
	}
	if err := r.BatchPut(ctx, issues); err != nil {
		t.Fatal(err)
	}

	open := collectIssues(t, r.Query(ctx, expression.Key("status").Equal(expression.Value("open")), repo.Index("by-status")))
	if got := numbers(open); !slices.Equal(got, []int{2, 1}) {
		t.Errorf("by-status open, by opened: %v, want [2 1]", got)
	}
	// The INCLUDE projection holds what opening the secret takes.
	anns := collectIssues(t, r.Query(ctx, expression.Key("assignee").Equal(expression.Value("ann")), repo.Index("by-assignee")))
	if got := numbers(anns); len(got) != 2 {
		t.Fatalf("by-assignee ann: %v", got)
	}
	for _, is := range anns {
		if v, err := is.Secret.Value(); err != nil || v != "secret "+issues[is.Number-1].Note || is.Note != "" {
			t.Errorf("issue %d from by-assignee: secret %q, %v; note %q (not projected)", is.Number, v, err, is.Note)
		}
	}
	byOpened := collectIssues(t, r.Query(ctx, expression.Key("project").Equal(expression.Value("P")), repo.Index("by-opened"), repo.Descending()))
	if got := numbers(byOpened); !slices.Equal(got, []int{1, 3, 2}) || byOpened[0].Note != "" || byOpened[0].Opened != 30 {
		t.Errorf("by-opened descending: %v, first %+v", got, byOpened[0])
	}

	if err := r.DeleteTable(ctx); err != nil {
		t.Fatal(err)
	}
	var nf *types.ResourceNotFoundException
	if _, err := r.DescribeTable(ctx); !errors.As(err, &nf) {
		t.Fatalf("DescribeTable after DeleteTable: %v", err)
	}
}

func collectIssues(t *testing.T, seq func(func(Issue, error) bool)) []Issue {
	t.Helper()
	var out []Issue
	for is, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, is)
	}
	return out
}

func numbers(ts []Issue) []int {
	var out []int
	for _, is := range ts {
		out = append(out, is.Number)
	}
	return out
}
