package repo_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

type Profile struct {
	PK       string                    `dynamodbav:"pk" repo:"hash"`
	Email    string                    `dynamodbav:"email"`
	Nickname string                    `dynamodbav:"nickname,omitempty"`
	Logins   int64                     `dynamodbav:"logins"`
	Tags     []string                  `dynamodbav:"tags,stringset"`
	History  []string                  `dynamodbav:"history"`
	Status   ProfileStatus             `dynamodbav:"status"`
	Created  *int64                    `dynamodbav:"created"`
	SSN      field.Encrypted[string]   `dynamodbav:"ssn" enc:"pii"`
	Phone    field.Encrypted[string]   `dynamodbav:"phone" enc:"pii"`
	PIN      field.Encrypted[int]      `dynamodbav:"pin" enc:"pii"`
	Cards    []field.Encrypted[string] `dynamodbav:"cards" enc:"pii"`
	Address  ProfileAddress            `dynamodbav:"address"`
	Meta     map[string]any            `dynamodbav:"meta"`
}

type ProfileStatus string

type ProfileAddress struct {
	City   string                  `dynamodbav:"city"`
	Street field.Encrypted[string] `dynamodbav:"street" enc:"pii"`
}

func profiles(t *testing.T, opts ...repo.Option) (*repo.Repo[Profile], *writeRecorder, *enctest.Provider) {
	t.Helper()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	keys := enctest.New()
	db := &writeRecorder{}
	r, err := repo.New[Profile]("profiles", append([]repo.Option{repo.WithRegistry(reg), repo.WithEncryptor(enc.New(keys)), repo.WithClient(db)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r, db, keys
}

// updateClauses resolves the placeholders of an UpdateItem request and
// returns its update expression, one action per entry, sorted, and the
// values it sends by attribute path.
func updateClauses(t *testing.T, names map[string]string, values map[string]types.AttributeValue, expr string) []string {
	t.Helper()
	expr = resolveExpr(expr, names, values)
	var out []string
	for _, section := range []string{"SET ", "REMOVE ", "ADD ", "DELETE "} {
		i := strings.Index(expr, section)
		if i < 0 {
			continue
		}
		rest := expr[i+len(section):]
		if j := strings.IndexAny(rest, "\n"); j >= 0 {
			rest = rest[:j]
		}
		for _, clause := range splitTop(rest) {
			out = append(out, strings.TrimSuffix(section, " ")+" "+strings.TrimSpace(clause))
		}
	}
	slices.Sort(out)
	return out
}

// splitTop splits at commas outside parentheses and brackets.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// resolveExpr replaces the placeholders of an expression with the names
// and values (as describeAV writes them) they stand for, longest first, so
// that #1 does not eat the start of #10.
func resolveExpr(expr string, names map[string]string, values map[string]types.AttributeValue) string {
	phs := make([]string, 0, len(names)+len(values))
	for ph := range names {
		phs = append(phs, ph)
	}
	for ph := range values {
		phs = append(phs, ph)
	}
	slices.SortFunc(phs, func(a, b string) int { return len(b) - len(a) })
	for _, ph := range phs {
		repl := names[ph]
		if v, ok := values[ph]; ok {
			repl = describeAV(v)
		}
		expr = strings.ReplaceAll(expr, ph, repl)
	}
	return expr
}

// describeAV writes an attribute value compactly: strings quoted (sealed
// ones as <sealed>), maps with sorted keys.
func describeAV(v types.AttributeValue) string {
	switch v := v.(type) {
	case nil:
		return "<absent>"
	case *types.AttributeValueMemberBOOL:
		return fmt.Sprint(v.Value)
	case *types.AttributeValueMemberS:
		if enc.IsEncrypted(v.Value) {
			return "<sealed>"
		}
		return fmt.Sprintf("%q", v.Value)
	case *types.AttributeValueMemberN:
		return v.Value
	case *types.AttributeValueMemberSS:
		return fmt.Sprintf("SS%q", v.Value)
	case *types.AttributeValueMemberNS:
		return fmt.Sprintf("NS%v", v.Value)
	case *types.AttributeValueMemberL:
		parts := make([]string, len(v.Value))
		for i, e := range v.Value {
			parts[i] = describeAV(e)
		}
		return "L[" + strings.Join(parts, " ") + "]"
	case *types.AttributeValueMemberM:
		parts := make([]string, 0, len(v.Value))
		for _, k := range slices.Sorted(maps.Keys(v.Value)) {
			parts = append(parts, k+":"+describeAV(v.Value[k]))
		}
		return "M{" + strings.Join(parts, " ") + "}"
	case *types.AttributeValueMemberNULL:
		return "NULL"
	}
	return fmt.Sprintf("%T", v)
}

// sentStrings returns every string in the values of a request, at any depth.
func sentStrings(values map[string]types.AttributeValue) []string {
	var out []string
	var walk func(types.AttributeValue)
	walk = func(v types.AttributeValue) {
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			out = append(out, v.Value)
		case *types.AttributeValueMemberN:
			out = append(out, v.Value)
		case *types.AttributeValueMemberSS:
			out = append(out, v.Value...)
		case *types.AttributeValueMemberB:
			out = append(out, string(v.Value))
		case *types.AttributeValueMemberL:
			for _, e := range v.Value {
				walk(e)
			}
		case *types.AttributeValueMemberM:
			for _, e := range v.Value {
				walk(e)
			}
		}
	}
	for _, v := range values {
		walk(v)
	}
	return out
}

func TestUpdateBuildsEveryActionAndSealsWithOneDataKey(t *testing.T) {
	ctx := context.Background()
	r, db, keys := profiles(t)
	upd := repo.NewUpdate().
		Set("email", "new@example.com").
		Set("status", "active").
		Set("ssn", "123-45-6789").
		Set("phone", field.NewEncrypted("+47 555 01 234")).
		Set("pin", 4321).
		Set("cards", []field.Encrypted[string]{field.NewEncrypted("4111111111111111")}).
		Set("address", ProfileAddress{City: "Oslo", Street: field.NewEncrypted("Karl Johans gate 1")}).
		Set("meta.source", "import").
		SetIfNotExists("created", 1700000000).
		Add("logins", 1).
		Add("tags", []string{"vip"}).
		Append("history", "login").
		Remove("nickname")
	if _, err := r.Update(ctx, repo.Key{Hash: "USER#1"}, upd, repo.If(expression.Name("ssn").AttributeExists())); err != nil {
		t.Fatal(err)
	}
	if n := keys.Generates.Load(); n != 1 {
		t.Fatalf("%d GenerateDataKey calls for five encrypted attributes under one spec, want 1", n)
	}
	in := db.updates[0]
	got := updateClauses(t, in.ExpressionAttributeNames, in.ExpressionAttributeValues, *in.UpdateExpression)
	want := []string{
		`ADD logins 1`,
		`ADD tags SS["vip"]`,
		`REMOVE nickname`,
		`SET address = M{city:"Oslo" street:<sealed>}`,
		`SET cards = L[<sealed>]`,
		`SET created = if_not_exists(created, 1700000000)`,
		`SET email = "new@example.com"`,
		`SET history = list_append(if_not_exists(history, L[]), L["login"])`,
		`SET meta.source = "import"`,
		`SET phone = <sealed>`,
		`SET pin = <sealed>`,
		`SET ssn = <sealed>`,
		`SET status = "active"`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("update expression\n got %q\nwant %q", got, want)
	}
	if c := conditionText(in.ConditionExpression, in.ExpressionAttributeNames, nil); c != "attribute_exists (ssn)" {
		t.Fatalf("condition %q", c)
	}
	if in.ReturnValues != "" {
		t.Fatalf("ReturnValues %q without ReturnNew or ReturnOld", in.ReturnValues)
	}
	for _, s := range sentStrings(in.ExpressionAttributeValues) {
		for _, secret := range []string{"123-45-6789", "+47 555 01 234", "4111111111111111", "Karl Johans"} {
			if strings.Contains(s, secret) {
				t.Fatalf("request carries plaintext %q", s)
			}
		}
	}
}

// placeholderFor returns the value placeholder set for attribute attr.
func placeholderFor(names map[string]string, expr *string, attr string) string {
	for ph, n := range names {
		if n != attr {
			continue
		}
		_, after, ok := strings.Cut(*expr, ph+" = ")
		if ok {
			end := strings.IndexAny(after, ", \n")
			if end < 0 {
				end = len(after)
			}
			return after[:end]
		}
	}
	return ""
}

func TestUpdateReturnsOpenedItem(t *testing.T) {
	ctx := context.Background()
	r, db, _ := profiles(t)
	k := repo.Key{Hash: "USER#1"}
	stored, err := r.Marshal(ctx, Profile{PK: "USER#1", Email: "e", SSN: field.NewEncrypted("123-45-6789")})
	if err != nil {
		t.Fatal(err)
	}
	db.item = stored
	for _, c := range []struct {
		opt  repo.WriteOption
		want types.ReturnValue
	}{{repo.ReturnNew(), types.ReturnValueAllNew}, {repo.ReturnOld(), types.ReturnValueAllOld}} {
		got, err := r.Update(ctx, k, repo.NewUpdate().Set("email", "e"), c.opt)
		if err != nil {
			t.Fatal(err)
		}
		if in := db.updates[len(db.updates)-1]; in.ReturnValues != c.want {
			t.Fatalf("ReturnValues %q, want %q", in.ReturnValues, c.want)
		}
		if ssn, err := got.SSN.Value(); err != nil || ssn != "123-45-6789" || got.Email != "e" {
			t.Fatalf("returned %+v (ssn %q, %v)", got, ssn, err)
		}
	}
	got, err := r.Update(ctx, k, repo.NewUpdate().Set("email", "e"))
	if err != nil || got.PK != "" {
		t.Fatalf("without ReturnNew/ReturnOld: %+v, %v", got, err)
	}
}

func TestUpdateWritesLoadedSealedValueAsStored(t *testing.T) {
	ctx := context.Background()
	r, db, keys := profiles(t)
	stored, err := r.Marshal(ctx, Profile{PK: "USER#1", SSN: field.NewEncrypted("123-45-6789")})
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := r.Unmarshal(ctx, stored)
	if err != nil {
		t.Fatal(err)
	}
	before := keys.Generates.Load()
	if _, err := r.Update(ctx, repo.Key{Hash: "USER#2"}, repo.NewUpdate().Set("ssn", loaded.SSN)); err != nil {
		t.Fatal(err)
	}
	if keys.Generates.Load() != before {
		t.Fatal("an unchanged sealed value was sealed again")
	}
	in := db.updates[0]
	if v := in.ExpressionAttributeValues[placeholderFor(in.ExpressionAttributeNames, in.UpdateExpression, "ssn")]; v.(*types.AttributeValueMemberS).Value != stored["ssn"].(*types.AttributeValueMemberS).Value {
		t.Fatal("the stored ciphertext was not written as it was")
	}
}

func TestUpdateOmitemptyEmptyValueRemoves(t *testing.T) {
	r, db, _ := profiles(t)
	if _, err := r.Update(context.Background(), repo.Key{Hash: "USER#1"}, repo.NewUpdate().Set("nickname", "")); err != nil {
		t.Fatal(err)
	}
	in := db.updates[0]
	if got := updateClauses(t, in.ExpressionAttributeNames, in.ExpressionAttributeValues, *in.UpdateExpression); !slices.Equal(got, []string{"REMOVE nickname"}) {
		t.Fatalf("update %q", got)
	}
}

func TestUpdateRejectedBeforeAnyRequest(t *testing.T) {
	ctx := context.Background()
	k := repo.Key{Hash: "USER#1"}
	cases := []struct {
		name string
		upd  repo.Update
		want string
	}{
		{"empty", repo.NewUpdate(), "no changes"},
		{"empty path", repo.NewUpdate().Set("", 1), "empty path"},
		{"unknown attribute", repo.NewUpdate().Set("emial", "x"), `no attribute "emial"`},
		{"hash key", repo.NewUpdate().Set("pk", "B"), "key attribute"},
		{"remove hash key", repo.NewUpdate().Remove("pk"), "key attribute"},
		{"same path twice", repo.NewUpdate().Set("email", "a").Set("email", "b"), "overlap"},
		{"nested overlap", repo.NewUpdate().Set("address", ProfileAddress{}).Set("address.city", "x"), "overlap"},
		{"wrong type", repo.NewUpdate().Set("logins", "many"), "does not fit field Profile.Logins"},
		{"fraction into int", repo.NewUpdate().Add("logins", 1.5), "does not fit"},
		{"number into string", repo.NewUpdate().Set("email", 7), "does not fit"},
		{"wrong encrypted type", repo.NewUpdate().Set("ssn", 123), "does not fit field Profile.SSN"},
		{"add to a list", repo.NewUpdate().Add("history", []string{"x"}), "needs a number or a set"},
		{"delete from a list", repo.NewUpdate().DeleteFromSet("history", []string{"x"}), "needs a set"},
		{"append to a set", repo.NewUpdate().Append("tags", "x"), "needs a list"},
		{"add to encrypted", repo.NewUpdate().Add("pin", 1), "can only be Set or removed"},
		{"append to encrypted", repo.NewUpdate().Append("cards", field.NewEncrypted("4111")), "can only be Set or removed"},
		{"set encrypted if not exists", repo.NewUpdate().SetIfNotExists("ssn", "123-45-6789"), "can only be Set or removed"},
		{"delete from encrypted", repo.NewUpdate().DeleteFromSet("cards", []string{"4111"}), "can only be Set or removed"},
		{"set inside encrypted list", repo.NewUpdate().Set("cards[0]", "4111"), "set the whole attribute"},
		{"set encrypted member of document", repo.NewUpdate().Set("address.street", "Karl Johans gate 1"), "set the whole attribute"},
		{"add to document with encrypted member", repo.NewUpdate().SetIfNotExists("address", ProfileAddress{}), "can only be Set or removed"},
		{"encrypted value in an untyped map", repo.NewUpdate().Set("meta.x", field.NewEncrypted("123-45-6789")), "not sealed"},
		{"sealing would precede a bad add", repo.NewUpdate().Set("ssn", "123-45-6789").Add("history", []string{"x"}), "needs a number or a set"},
		{"sealing would precede a bad nested value", repo.NewUpdate().Set("ssn", "123-45-6789").Set("meta.x", field.NewEncrypted("123-45-6789")), "not sealed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, db, keys := profiles(t)
			_, err := r.Update(ctx, k, c.upd)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to say %q", err, c.want)
			}
			if !errors.Is(err, repo.ErrInvalidUpdate) && c.name != "empty" {
				t.Fatalf("err = %v, want ErrInvalidUpdate", err)
			}
			for _, secret := range []string{"123-45-6789", "4111", "Karl Johans"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error shows the plaintext: %v", err)
				}
			}
			if db.calls() != 0 || keys.Generates.Load() != 0 {
				t.Fatalf("%d requests, %d GenerateDataKey calls", db.calls(), keys.Generates.Load())
			}
		})
	}
}

func TestUpdateInReadOnlyModeSealsNothing(t *testing.T) {
	r, db, keys := profiles(t, repo.WithMode(enc.ReadOnly))
	_, err := r.Update(context.Background(), repo.Key{Hash: "USER#1"}, repo.NewUpdate().Set("ssn", "123-45-6789"))
	if !errors.Is(err, enc.ErrReadOnly) {
		t.Fatalf("err = %v, want ErrReadOnly", err)
	}
	if db.calls() != 0 || keys.Generates.Load() != 0 {
		t.Fatal("ReadOnly update reached DynamoDB or KMS")
	}
}

func TestUpdateNumberConversions(t *testing.T) {
	r, db, _ := profiles(t)
	upd := repo.NewUpdate().Add("logins", uint8(3)).Set("created", 12.0).Set("address", &ProfileAddress{City: "Oslo"})
	if _, err := r.Update(context.Background(), repo.Key{Hash: "USER#1"}, upd); err != nil {
		t.Fatal(err)
	}
	in := db.updates[0]
	got := updateClauses(t, in.ExpressionAttributeNames, in.ExpressionAttributeValues, *in.UpdateExpression)
	if !slices.Equal(got, []string{"ADD logins 3", `SET address = M{city:"Oslo" street:NULL}`, "SET created = 12"}) {
		t.Fatalf("update %q", got)
	}
}

func TestUpdatesExtendedFromOneBaseAreIndependent(t *testing.T) {
	r, db, _ := profiles(t)
	base := repo.NewUpdate().Set("email", "e").Add("logins", 1)
	withStatus := base.Set("status", "active")
	withNickname := base.Set("nickname", "n")
	for _, u := range []repo.Update{base, withStatus, withNickname} {
		if _, err := r.Update(context.Background(), repo.Key{Hash: "USER#1"}, u); err != nil {
			t.Fatal(err)
		}
	}
	var got [][]string
	for _, in := range db.updates {
		got = append(got, updateClauses(t, in.ExpressionAttributeNames, in.ExpressionAttributeValues, *in.UpdateExpression))
	}
	want := [][]string{
		{"ADD logins 1", `SET email = "e"`},
		{"ADD logins 1", `SET email = "e"`, `SET status = "active"`},
		{"ADD logins 1", `SET email = "e"`, `SET nickname = "n"`},
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("updates\n got %q\nwant %q", got, want)
	}
}
