package repo_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

func versionedRepo(t *testing.T) (*repo.Repo[Versioned], *writeRecorder) {
	t.Helper()
	db := &writeRecorder{}
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	r, err := repo.New[Versioned]("notes", repo.WithClient(db), repo.WithRegistry(reg), repo.WithEncryptor(enc.New(enctest.New())))
	if err != nil {
		t.Fatal(err)
	}
	return r, db
}

func TestVersionFieldChecks(t *testing.T) {
	type text struct {
		PK string `dynamodbav:"pk" repo:"hash"`
		V  string `repo:"version"`
	}
	type asString struct {
		PK string `dynamodbav:"pk" repo:"hash"`
		V  int    `dynamodbav:",string" repo:"version"`
	}
	type keyToo struct {
		PK int `dynamodbav:"pk" repo:"hash,version"`
	}
	type two struct {
		PK string `dynamodbav:"pk" repo:"hash"`
		V  int    `repo:"version"`
		W  int    `repo:"version"`
	}
	type unsigned struct {
		PK string `dynamodbav:"pk" repo:"hash"`
		V  uint16 `repo:"version"`
	}
	for name, c := range map[string]struct {
		err  error
		want string
	}{
		"string":       {newErr[text](), "must be an integer"},
		",string":      {newErr[asString](), "stored as a number"},
		"key":          {newErr[keyToo](), "cannot be combined"},
		"two":          {newErr[two](), "more than one"},
		"uint16 is ok": {newErr[unsigned](), ""},
	} {
		t.Run(name, func(t *testing.T) {
			if c.want == "" {
				if c.err != nil {
					t.Fatal(c.err)
				}
				return
			}
			if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
				t.Fatalf("New: %v, want an error with %q", c.err, c.want)
			}
		})
	}
}

func newErr[T any]() error {
	_, err := repo.New[T]("t", repo.WithRegistry(enc.NewRegistry()))
	return err
}

func TestVersionPut(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name      string
		version   int64
		opts      []repo.WriteOption
		cond      string
		stored    string
		onFailure types.ReturnValuesOnConditionCheckFailure
	}{
		{"new", 0, nil, "attribute_not_exists (v)", "1", ""},
		{"loaded", 4, nil, "v = 4", "5", ""},
		{"loaded with a condition", 4, []repo.WriteOption{repo.If(expression.Name("pk").AttributeExists())}, "(attribute_exists (pk)) AND (v = 4)", "5", types.ReturnValuesOnConditionCheckFailureAllOld},
		{"new with IfNotExists", 0, []repo.WriteOption{repo.IfNotExists()}, "(attribute_not_exists (v)) AND (attribute_not_exists (pk))", "1", types.ReturnValuesOnConditionCheckFailureAllOld},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, db := versionedRepo(t)
			if err := r.Put(ctx, Versioned{PK: "N", Note: field.NewEncrypted("x"), Version: c.version}, c.opts...); err != nil {
				t.Fatal(err)
			}
			in := db.puts[0]
			if got := conditionText(in.ConditionExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues); got != c.cond {
				t.Fatalf("condition %q, want %q", got, c.cond)
			}
			if got := in.Item["v"].(*types.AttributeValueMemberN).Value; got != c.stored {
				t.Fatalf("stored version %s, want %s", got, c.stored)
			}
			if in.ReturnValuesOnConditionCheckFailure != c.onFailure {
				t.Fatalf("ReturnValuesOnConditionCheckFailure %q, want %q", in.ReturnValuesOnConditionCheckFailure, c.onFailure)
			}
		})
	}
}

func TestVersionRefusedWrites(t *testing.T) {
	ctx := context.Background()
	r, db := versionedRepo(t)
	type tiny struct {
		PK string `dynamodbav:"pk" repo:"hash"`
		V  int8   `repo:"version"`
	}
	small, err := repo.New[tiny]("t", repo.WithClient(db), repo.WithRegistry(enc.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		err  error
		want string
	}{
		"IfNotExists of a loaded item": {r.Put(ctx, Versioned{PK: "N", Version: 2}, repo.IfNotExists()), "IfNotExists"},
		"IfExists of a new item":       {r.Put(ctx, Versioned{PK: "N"}, repo.IfExists()), "IfExists"},
		"IfVersion on Put":             {r.Put(ctx, Versioned{PK: "N"}, repo.IfVersion(0)), "taken from the item"},
		"negative IfVersion":           {r.Delete(ctx, repo.Key{Hash: "N"}, repo.IfVersion(-1)), "not negative"},
		"version at its type's end":    {small.Put(ctx, tiny{PK: "N", V: 127}), "no next version"},
		"BatchPut":                     {r.BatchPut(ctx, []Versioned{{PK: "N"}}), "Transact"},
		"Update of the version":        {func() error { _, err := r.Update(ctx, repo.Key{Hash: "N"}, repo.NewUpdate().Add("v", 1)); return err }(), "item's version"},
	} {
		t.Run(name, func(t *testing.T) {
			if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
				t.Fatalf("err = %v, want one naming %q", c.err, c.want)
			}
		})
	}
	if db.calls() != 0 {
		t.Fatalf("%d requests sent for refused writes", db.calls())
	}
}

func TestVersionUpdateAndDelete(t *testing.T) {
	ctx := context.Background()
	r, db := versionedRepo(t)
	if _, err := r.Update(ctx, repo.Key{Hash: "N"}, repo.NewUpdate().Set("note", "y")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Update(ctx, repo.Key{Hash: "N"}, repo.NewUpdate().Remove("note"), repo.IfVersion(2)); err != nil {
		t.Fatal(err)
	}
	for i, wantCond := range []string{"", "v = 2"} {
		in := db.updates[i]
		if got := conditionText(in.ConditionExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues); got != wantCond {
			t.Fatalf("update %d condition %q, want %q", i, got, wantCond)
		}
		if got := conditionText(in.UpdateExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues); !strings.Contains(got, "ADD v 1") {
			t.Fatalf("update %d %q does not increase the version", i, got)
		}
	}
	if err := r.Delete(ctx, repo.Key{Hash: "N"}, repo.IfVersion(0)); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, repo.Key{Hash: "N"}); err != nil {
		t.Fatal(err)
	}
	if got := conditionText(db.deletes[0].ConditionExpression, db.deletes[0].ExpressionAttributeNames, nil); got != "attribute_not_exists (v)" {
		t.Fatalf("delete with IfVersion(0): condition %q", got)
	}
	if db.deletes[1].ConditionExpression != nil {
		t.Fatalf("delete without IfVersion has condition %q", aws.ToString(db.deletes[1].ConditionExpression))
	}
}

// A failed write with a version check and another condition is a version
// conflict only when the current item's version differs.
func TestVersionConflictIsToldApart(t *testing.T) {
	ctx := context.Background()
	other := repo.If(expression.Name("pk").AttributeExists())
	for _, c := range []struct {
		name     string
		current  map[string]types.AttributeValue
		opts     []repo.WriteOption
		conflict bool
	}{
		{"version alone, no item returned", nil, nil, true},
		{"same version spelled otherwise", map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "N"}, "v": &types.AttributeValueMemberN{Value: "3.0"}}, []repo.WriteOption{other}, false},
		{"newer version", map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "N"}, "v": &types.AttributeValueMemberN{Value: "4"}}, []repo.WriteOption{other}, true},
		{"item gone", nil, []repo.WriteOption{other}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, db := versionedRepo(t)
			db.err = &types.ConditionalCheckFailedException{Message: aws.String("failed"), Item: c.current}
			err := r.Delete(ctx, repo.Key{Hash: "N"}, append(c.opts, repo.IfVersion(3))...)
			var cf *repo.ConditionFailedError[Versioned]
			if !errors.As(err, &cf) || cf.VersionConflict != c.conflict || errors.Is(err, repo.ErrVersionConflict) != c.conflict {
				t.Fatalf("err = %v, want a condition failure with VersionConflict %v", err, c.conflict)
			}
		})
	}
}
