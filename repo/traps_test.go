package repo_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// The trap tests pin down behaviour that is easy to get subtly wrong: tags
// that are accepted and ignored, fields that attributevalue drops while the
// repository still counts on them, writes that happened but report an error,
// one bad item that hides the good ones, and KMS calls for items DynamoDB
// would refuse anyway.

const trapTable = "trap_users"

type trapUser struct {
	PK   string                  `dynamodbav:"pk" repo:"hash"`
	Name string                  `dynamodbav:"name"`
	Bio  string                  `dynamodbav:"bio,omitempty"`
	SSN  field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
}

func trapRegistry(t *testing.T) *enc.Registry {
	t.Helper()
	reg := enc.NewRegistry()
	if err := reg.Register("pii", enc.Spec{KeyID: "alias/trap-pii"}); err != nil {
		t.Fatal(err)
	}
	return reg
}

// trapRepo returns a repository of trapUser over an empty in-memory table.
func trapRepo(t *testing.T) (*repo.Repo[trapUser], *trapDB, *enctest.Provider) {
	t.Helper()
	keys := enctest.New()
	db := newTrapDB(trapTable, "pk")
	r, err := repo.New[trapUser](trapTable, repo.WithRegistry(trapRegistry(t)), repo.WithEncryptor(enc.New(keys)), repo.WithClient(db))
	if err != nil {
		t.Fatal(err)
	}
	return r, db, keys
}

// trapNew is repo.New for a type that New is expected to refuse.
func trapNew[T any](t *testing.T) error {
	t.Helper()
	_, err := repo.New[T]("trap_items", repo.WithRegistry(trapRegistry(t)), repo.WithEncryptor(enc.New(enctest.New())), repo.WithClient(newTrapDB("trap_items", "pk")))
	return err
}

func trapKey(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}}
}

// trapRequireText fails unless err's text holds every one of want.
func trapRequireText(t *testing.T, err error, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

// trapCorrupt returns a sealed value with the last byte of its envelope (in
// the GCM tag) flipped: still "ENC:" and valid base64, but it cannot open.
func trapCorrupt(t *testing.T, av types.AttributeValue) types.AttributeValue {
	t.Helper()
	s, ok := av.(*types.AttributeValueMemberS)
	if !ok || !enc.IsEncrypted(s.Value) {
		t.Fatalf("not a sealed value: %#v", av)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s.Value, enc.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 0xff
	return &types.AttributeValueMemberS{Value: enc.Prefix + base64.StdEncoding.EncodeToString(raw)}
}

// 1. An `enc` tag on a field that is not a field.Encrypted is refused by
// New, naming the field: otherwise the value would be stored in plaintext
// although its author asked for encryption.

type trapEncOnString struct {
	PK    string `dynamodbav:"pk" repo:"hash"`
	Email string `dynamodbav:"email" enc:"pii"`
}

type trapEncOnStrings struct {
	PK      string   `dynamodbav:"pk" repo:"hash"`
	Aliases []string `dynamodbav:"aliases" enc:"pii"`
}

type trapEncOnPointer struct {
	PK       string  `dynamodbav:"pk" repo:"hash"`
	Nickname *string `dynamodbav:"nickname" enc:"pii"`
}

type trapPlainLocation struct {
	City string `dynamodbav:"city"`
}

type trapEncOnStruct struct {
	PK      string            `dynamodbav:"pk" repo:"hash"`
	Address trapPlainLocation `dynamodbav:"address" enc:"pii"`
}

type trapEncOnHidden struct {
	PK   string `dynamodbav:"pk" repo:"hash"`
	Memo string `dynamodbav:"-" enc:"pii"`
}

func TestTrapEncTagOnPlainField(t *testing.T) {
	for _, c := range []struct {
		name, goName string
		newRepo      func(*testing.T) error
	}{
		{"string", "Email", trapNew[trapEncOnString]},
		{"[]string", "Aliases", trapNew[trapEncOnStrings]},
		{"*string", "Nickname", trapNew[trapEncOnPointer]},
		{"plain struct", "Address", trapNew[trapEncOnStruct]},
		{`dynamodbav:"-"`, "Memo", trapNew[trapEncOnHidden]},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.newRepo(t)
			if err == nil {
				t.Fatalf("New accepted an `enc` tag on %s, which is not a field.Encrypted (it would be stored in plaintext)", c.goName)
			}
			trapRequireText(t, err, c.goName, "enc")
		})
	}
}

// 2. The roles `repo:"version"` and `repo:"ttl"` once had no behaviour and
// were refused; now they are built (version: version_test.go, TxPut in
// tx_test.go; ttl: below and ttl_test.go).

type trapExpiringTime struct {
	PK        string    `dynamodbav:"pk" repo:"hash"`
	ExpiresAt time.Time `dynamodbav:"expires_at" repo:"ttl"`
}

type trapExpiringUnix struct {
	PK       string `dynamodbav:"pk" repo:"hash"`
	Deadline int64  `dynamodbav:"deadline" repo:"ttl"`
}

// The ttl role is built: the field is stored as a number of Unix seconds,
// which is what DynamoDB's TTL reads (attributevalue alone would store a
// time.Time as an RFC 3339 string, which DynamoDB never expires).
func TestTrapTTLRoleStoresUnixSeconds(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	check := func(t *testing.T, db *trapDB, attr string) {
		t.Helper()
		got := db.get(trapKey("u1"))[attr]
		if n, ok := got.(*types.AttributeValueMemberN); !ok || n.Value != fmt.Sprint(at.Unix()) {
			t.Fatalf("%s stored as %s, want the number %d", attr, describeAV(got), at.Unix())
		}
	}
	t.Run("ttl time.Time", func(t *testing.T) {
		db := newTrapDB("trap_items", "pk")
		r, err := repo.New[trapExpiringTime]("trap_items", repo.WithRegistry(trapRegistry(t)), repo.WithEncryptor(enc.New(enctest.New())), repo.WithClient(db))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Put(ctx, trapExpiringTime{PK: "u1", ExpiresAt: at}); err != nil {
			t.Fatal(err)
		}
		check(t, db, "expires_at")
		got, err := r.Get(ctx, repo.Key{Hash: "u1"})
		if err != nil || !got.ExpiresAt.Equal(at) {
			t.Fatalf("Get = %v, %v; want ExpiresAt %v", got.ExpiresAt, err, at)
		}
	})
	t.Run("ttl int64", func(t *testing.T) {
		db := newTrapDB("trap_items", "pk")
		r, err := repo.New[trapExpiringUnix]("trap_items", repo.WithRegistry(trapRegistry(t)), repo.WithEncryptor(enc.New(enctest.New())), repo.WithClient(db))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Put(ctx, trapExpiringUnix{PK: "u1", Deadline: at.Unix()}); err != nil {
			t.Fatal(err)
		}
		check(t, db, "deadline")
	})
}

// 3. Several Filter options all apply: DynamoDB gets them joined with AND.

func TestTrapFiltersCombine(t *testing.T) {
	ctx := context.Background()
	byName := repo.Filter(expression.Name("name").Equal(expression.Value("zed")))
	hasBio := repo.Filter(expression.Name("bio").AttributeExists())
	check := func(t *testing.T, filter *string, names map[string]string, values map[string]types.AttributeValue) {
		t.Helper()
		got := resolveExpr(derefOr(filter), names, values)
		for _, want := range []string{"name", `"zed"`, "bio", "AND"} {
			if !strings.Contains(got, want) {
				t.Errorf("filter sent is %q (raw %q), which lacks %q: both Filter options must apply", got, derefOr(filter), want)
			}
		}
	}
	t.Run("query", func(t *testing.T) {
		r, db, _ := trapRepo(t)
		for _, err := range r.Query(ctx, expression.Key("pk").Equal(expression.Value("u1")), byName, hasBio) {
			if err != nil {
				t.Fatal(err)
			}
		}
		queries, _ := db.reads()
		if len(queries) != 1 {
			t.Fatalf("%d Query requests, want 1", len(queries))
		}
		in := queries[0]
		check(t, in.FilterExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues)
	})
	t.Run("scan", func(t *testing.T) {
		r, db, _ := trapRepo(t)
		for _, err := range r.Scan(ctx, byName, hasBio) {
			if err != nil {
				t.Fatal(err)
			}
		}
		_, scans := db.reads()
		if len(scans) != 1 {
			t.Fatalf("%d Scan requests, want 1", len(scans))
		}
		in := scans[0]
		check(t, in.FilterExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues)
	})
}

func derefOr(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// 4. When a write has happened but the item it returns cannot be opened,
// the call succeeds; the values that could not be opened stay sealed and
// their Value gives the reason.

func TestTrapReturnedItemThatCannotBeOpened(t *testing.T) {
	ctx := context.Background()
	k := repo.Key{Hash: "u1"}
	damages := []struct {
		name string
		// damage makes the stored ssn of u1 impossible to open and returns
		// the stored form and a check of Value's error.
		damage func(t *testing.T, db *trapDB, keys *enctest.Provider) (stored string, isCause func(error) bool)
	}{
		{"KMS denies Decrypt", func(t *testing.T, db *trapDB, keys *enctest.Provider) (string, func(error) bool) {
			keys.Fail = func(op string, _ enc.KeyRef) error {
				if op == "Decrypt" {
					return enc.ErrAccessDenied
				}
				return nil
			}
			return db.get(trapKey("u1"))["ssn"].(*types.AttributeValueMemberS).Value,
				func(err error) bool { return errors.Is(err, enc.ErrAccessDenied) }
		}},
		{"damaged sealed value", func(t *testing.T, db *trapDB, _ *enctest.Provider) (string, func(error) bool) {
			item := db.get(trapKey("u1"))
			item["ssn"] = trapCorrupt(t, item["ssn"])
			db.set(item)
			return item["ssn"].(*types.AttributeValueMemberS).Value, func(err error) bool {
				_, isEnc := enc.AsError(err)
				return isEnc && (errors.Is(err, enc.ErrInvalidCiphertext) || errors.Is(err, enc.ErrMalformed))
			}
		}},
	}
	ops := []struct {
		name string
		call func(r *repo.Repo[trapUser]) (trapUser, error)
		// wantName is the name of the returned item; stored, the name
		// stored after the call ("" for no item).
		wantName, stored string
	}{
		{"Update ReturnNew", func(r *repo.Repo[trapUser]) (trapUser, error) {
			return r.Update(ctx, k, repo.NewUpdate().Set("name", "after"), repo.ReturnNew())
		}, "after", "after"},
		{"Update ReturnOld", func(r *repo.Repo[trapUser]) (trapUser, error) {
			return r.Update(ctx, k, repo.NewUpdate().Set("name", "after"), repo.ReturnOld())
		}, "before", "after"},
		{"DeleteReturning", func(r *repo.Repo[trapUser]) (trapUser, error) {
			return r.DeleteReturning(ctx, k)
		}, "before", ""},
	}
	for _, d := range damages {
		for _, op := range ops {
			t.Run(d.name+"/"+op.name, func(t *testing.T) {
				r, db, keys := trapRepo(t)
				if err := r.Put(ctx, trapUser{PK: "u1", Name: "before", SSN: field.NewEncrypted("123-45-6789")}); err != nil {
					t.Fatal(err)
				}
				stored, isCause := d.damage(t, db, keys)

				got, err := op.call(r)
				if err != nil {
					t.Fatalf("the write happened but the call failed: %v", err)
				}
				after := db.get(trapKey("u1"))
				switch {
				case op.stored == "" && after != nil:
					t.Fatal("the item is still stored")
				case op.stored != "" && describeAV(after["name"]) != fmt.Sprintf("%q", op.stored):
					t.Fatalf("stored name %s, want %q", describeAV(after["name"]), op.stored)
				}
				if got.PK != "u1" || got.Name != op.wantName {
					t.Fatalf("returned item has pk %q, name %q; want u1, %q", got.PK, got.Name, op.wantName)
				}
				if !got.SSN.IsSealed() || got.SSN.Ciphertext() != stored {
					t.Fatalf("ssn sealed %v, ciphertext %q; want it sealed as stored", got.SSN.IsSealed(), got.SSN.Ciphertext())
				}
				v, verr := got.SSN.Value()
				if verr == nil || !isCause(verr) {
					t.Fatalf("ssn Value() = %q, %v; want the reason it could not be opened", v, verr)
				}
				if strings.Contains(verr.Error(), "123-45-6789") {
					t.Fatalf("Value's error shows the plaintext: %v", verr)
				}
			})
		}
	}
}

// 5. A stored encrypted attribute of a type the field cannot load fails
// as an *enc.Error matching enc.ErrMalformed that names the table, the
// operation, the item's key and the attribute, and never the stored content.

// trapMarker starts every piece of content stored in a wrong-typed
// attribute; trapLeaks reports whether an error text shows any of it.
const trapMarker = "zqx"

func trapLeaks(s string) bool {
	for _, leak := range []string{trapMarker, "77317731", "122 113 120", "7a7178", base64.StdEncoding.EncodeToString([]byte(trapMarker))} {
		if strings.Contains(s, leak) {
			return true
		}
	}
	return false
}

func trapDeepMap(depth int) types.AttributeValue {
	var av types.AttributeValue = &types.AttributeValueMemberS{Value: trapMarker + "-deep"}
	for range depth {
		av = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{trapMarker + "level": av}}
	}
	return av
}

// trapWrongTypes are stored values that a field.Encrypted[string] does not
// take as sealed values nor as legacy plaintext (which is S or N).
func trapWrongTypes() []struct {
	name string
	av   types.AttributeValue
} {
	return []struct {
		name string
		av   types.AttributeValue
	}{
		{"B", &types.AttributeValueMemberB{Value: []byte(trapMarker + "-binary")}},
		{"BOOL", &types.AttributeValueMemberBOOL{Value: true}},
		{"M", &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{trapMarker + "key": &types.AttributeValueMemberS{Value: trapMarker + "-map"}}}},
		{"L", &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberS{Value: trapMarker + "-list"}}}},
		{"SS", &types.AttributeValueMemberSS{Value: []string{trapMarker + "-set"}}},
		{"NS", &types.AttributeValueMemberNS{Value: []string{"77317731"}}},
		{"BS", &types.AttributeValueMemberBS{Value: [][]byte{[]byte(trapMarker + "-bset")}}},
		{"M nested 40 deep", trapDeepMap(40)},
	}
}

// trapCheckMalformed checks an error about u1's wrong-typed ssn.
func trapCheckMalformed(t *testing.T, err error, op, key string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	if _, ok := enc.AsError(err); !ok {
		t.Errorf("enc.AsError(%q) is false", err)
	}
	if !errors.Is(err, enc.ErrMalformed) {
		t.Errorf("%q does not match enc.ErrMalformed", err)
	}
	trapRequireText(t, err, trapTable, op, key, "ssn")
	if trapLeaks(err.Error()) {
		t.Errorf("error shows the stored content: %q", err)
	}
}

func TestTrapWrongTypedEncryptedAttribute(t *testing.T) {
	ctx := context.Background()
	for _, w := range trapWrongTypes() {
		store := func(t *testing.T) *repo.Repo[trapUser] {
			r, db, _ := trapRepo(t)
			db.set(map[string]types.AttributeValue{
				"pk":   &types.AttributeValueMemberS{Value: "u1"},
				"name": &types.AttributeValueMemberS{Value: "n"},
				"ssn":  w.av,
			})
			return r
		}
		t.Run("get/"+w.name, func(t *testing.T) {
			r := store(t)
			_, err := r.Get(ctx, repo.Key{Hash: "u1"})
			trapCheckMalformed(t, err, "get", `{Hash:"u1"}`)
		})
		t.Run("query/"+w.name, func(t *testing.T) {
			r := store(t)
			var errs []error
			items := 0
			for _, err := range r.Query(ctx, expression.Key("pk").Equal(expression.Value("u1"))) {
				if err != nil {
					errs = append(errs, err)
				} else {
					items++
				}
			}
			if len(errs) != 1 || items != 0 {
				t.Fatalf("%d items and %d errors (%v), want exactly one error", items, len(errs), errs)
			}
			trapCheckMalformed(t, errs[0], "query", `{Hash:"u1"}`)
		})
	}
}

// 6. One damaged item among five: reads deliver the four good items and
// one error naming the damaged item's key and attribute.

var trapFive = []string{"u1", "u2", "u3", "u4", "u5"}

// trapFiveStored stores five users, u1..u5, and damages u3's ssn.
func trapFiveStored(t *testing.T, damage func(*testing.T, types.AttributeValue) types.AttributeValue) (*repo.Repo[trapUser], *trapDB) {
	t.Helper()
	r, db, _ := trapRepo(t)
	var users []trapUser
	for _, pk := range trapFive {
		users = append(users, trapUser{PK: pk, Name: "name-" + pk, SSN: field.NewEncrypted("ssn-" + pk)})
	}
	if err := r.BatchPut(context.Background(), users); err != nil {
		t.Fatal(err)
	}
	item := db.get(trapKey("u3"))
	item["ssn"] = damage(t, item["ssn"])
	db.set(item)
	return r, db
}

func trapCheckGood(t *testing.T, u trapUser) {
	t.Helper()
	if ssn, err := u.SSN.Value(); err != nil || ssn != "ssn-"+u.PK || u.Name != "name-"+u.PK {
		t.Errorf("item %s: name %q, ssn %q, %v", u.PK, u.Name, ssn, err)
	}
}

func TestTrapOneDamagedItemAmongFive(t *testing.T) {
	ctx := context.Background()
	damages := []struct {
		name   string
		damage func(*testing.T, types.AttributeValue) types.AttributeValue
	}{
		{"corrupt sealed value", trapCorrupt},
		{"wrong type", func(*testing.T, types.AttributeValue) types.AttributeValue {
			return &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{trapMarker: &types.AttributeValueMemberS{Value: trapMarker}}}
		}},
	}
	reads := []struct {
		name string
		seq  func(*repo.Repo[trapUser]) iter.Seq2[trapUser, error]
		reqs func(*trapDB) int
	}{
		{"query", func(r *repo.Repo[trapUser]) iter.Seq2[trapUser, error] {
			return r.Query(ctx, expression.Key("pk").Equal(expression.Value("u")))
		}, func(db *trapDB) int { q, _ := db.reads(); return len(q) }},
		{"scan", func(r *repo.Repo[trapUser]) iter.Seq2[trapUser, error] {
			return r.Scan(ctx)
		}, func(db *trapDB) int { _, s := db.reads(); return len(s) }},
	}
	for _, d := range damages {
		for _, rd := range reads {
			t.Run(d.name+"/"+rd.name+" keeps ranging", func(t *testing.T) {
				r, _ := trapFiveStored(t, d.damage)
				var got []string
				var errs []error
				for u, err := range rd.seq(r) {
					if err != nil {
						errs = append(errs, err)
						continue
					}
					trapCheckGood(t, u)
					got = append(got, u.PK)
				}
				if want := []string{"u1", "u2", "u4", "u5"}; !slices.Equal(got, want) {
					t.Errorf("items %v, want %v", got, want)
				}
				if len(errs) != 1 {
					t.Fatalf("%d errors (%v), want exactly 1", len(errs), errs)
				}
				trapRequireText(t, errs[0], `{Hash:"u3"}`, "ssn")
				if trapLeaks(errs[0].Error()) {
					t.Errorf("error shows the stored content: %q", errs[0])
				}
			})
			t.Run(d.name+"/"+rd.name+" breaks at the error", func(t *testing.T) {
				r, db := trapFiveStored(t, d.damage)
				var before []string
				var got error
				for u, err := range rd.seq(r) {
					if err != nil {
						got = err
						break
					}
					trapCheckGood(t, u)
					before = append(before, u.PK)
				}
				if got == nil {
					t.Fatalf("no error; items %v", before)
				}
				trapRequireText(t, got, `{Hash:"u3"}`, "ssn")
				for _, pk := range before {
					if pk == "u3" {
						t.Errorf("the damaged item was yielded: %v", before)
					}
				}
				if n := rd.reqs(db); n != 1 {
					t.Errorf("%d requests, want 1 (the loop broke)", n)
				}
			})
		}
		t.Run(d.name+"/BatchGet", func(t *testing.T) {
			r, _ := trapFiveStored(t, d.damage)
			var keys []repo.Key
			for _, pk := range trapFive {
				keys = append(keys, repo.Key{Hash: pk})
			}
			items, err := r.BatchGet(ctx, keys)
			var got []string
			for _, u := range items {
				trapCheckGood(t, u)
				got = append(got, u.PK)
			}
			if want := []string{"u1", "u2", "u4", "u5"}; !slices.Equal(got, want) {
				t.Errorf("items %v, want %v", got, want)
			}
			if err == nil {
				t.Fatal("no error for the damaged item")
			}
			var be *repo.BatchError
			if !errors.As(err, &be) {
				t.Fatalf("%T %q is not a *repo.BatchError", err, err)
			}
			if want := []repo.Key{{Hash: "u3"}}; !slices.Equal(be.Unprocessed, want) {
				t.Errorf("Unprocessed %v, want %v", be.Unprocessed, want)
			}
			trapRequireText(t, err, `{Hash:"u3"}`)
			if trapLeaks(err.Error()) {
				t.Errorf("error shows the stored content: %q", err)
			}
		})
	}
}

// 7. Attributes are found exactly as attributevalue finds them: a key or
// encrypted field that attributevalue drops as ambiguous is refused.

type trapSecrets struct {
	SSN field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
}

type trapHome struct{ trapSecrets }

type trapWork struct{ trapSecrets }

type trapTwiceEmbedded struct {
	PK string `dynamodbav:"pk" repo:"hash"`
	trapHome
	trapWork
}

type trapKeyLeft struct {
	PK string `repo:"hash"`
}

type trapKeyRight struct {
	PK string
}

type trapAmbiguousKey struct {
	trapKeyLeft
	trapKeyRight
	Name string `dynamodbav:"name"`
}

type trapKeyHolder struct {
	PK string `dynamodbav:"pk" repo:"hash"`
}

type trapKeyHome struct{ trapKeyHolder }

type trapKeyWork struct{ trapKeyHolder }

type trapKeyTwiceEmbedded struct {
	trapKeyHome
	trapKeyWork
	Name string `dynamodbav:"name"`
}

func TestTrapAmbiguousEmbeddedFields(t *testing.T) {
	ambiguous := func(t *testing.T, err error, goName string) {
		t.Helper()
		if err == nil {
			t.Fatalf("New accepted %s, which attributevalue drops as ambiguous", goName)
		}
		trapRequireText(t, err, goName)
		if msg := strings.ToLower(err.Error()); !strings.Contains(msg, "ambiguous") && !strings.Contains(msg, "dropped") {
			t.Errorf("error %q does not say the field is ambiguous or dropped", err)
		}
	}
	t.Run("encrypted field in a type embedded twice", func(t *testing.T) {
		m, err := attributevalue.MarshalMap(trapTwiceEmbedded{PK: "u1"})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m["ssn"]; ok || m["pk"] == nil {
			t.Fatalf("attributevalue gives %v; the test expects it to drop ssn", m)
		}
		ambiguous(t, trapNew[trapTwiceEmbedded](t), "SSN")
	})
	t.Run("hash key clashing with an untagged field at the same depth", func(t *testing.T) {
		m, err := attributevalue.MarshalMap(trapAmbiguousKey{trapKeyLeft{"a"}, trapKeyRight{"b"}, "n"})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m["PK"]; ok {
			t.Fatalf("attributevalue gives %v; the test expects it to drop PK", m)
		}
		ambiguous(t, trapNew[trapAmbiguousKey](t), "PK")
	})
	t.Run("hash key in a type embedded twice", func(t *testing.T) {
		m, err := attributevalue.MarshalMap(trapKeyTwiceEmbedded{trapKeyHome{trapKeyHolder{"a"}}, trapKeyWork{trapKeyHolder{"b"}}, "n"})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m["pk"]; ok {
			t.Fatalf("attributevalue gives %v; the test expects it to drop pk", m)
		}
		ambiguous(t, trapNew[trapKeyTwiceEmbedded](t), "PK")
	})
}

// 8. A hash key that attributevalue never stores is named with the reason.

type trapHiddenKey struct {
	PK   string `dynamodbav:"-" repo:"hash"`
	Name string `dynamodbav:"name"`
}

type trapUnexportedKey struct {
	pk   string `repo:"hash"`
	Name string `dynamodbav:"name"`
}

var _ = trapUnexportedKey{pk: "unused"}

func TestTrapHiddenHashKey(t *testing.T) {
	t.Run(`dynamodbav:"-"`, func(t *testing.T) {
		err := trapNew[trapHiddenKey](t)
		if err == nil {
			t.Fatal(`New accepted a hash key tagged dynamodbav:"-"`)
		}
		trapRequireText(t, err, "PK")
		if !strings.Contains(err.Error(), `"-"`) && !strings.Contains(err.Error(), `\"-\"`) {
			t.Errorf(`error %q does not give the reason (dynamodbav:"-")`, err)
		}
	})
	t.Run("unexported", func(t *testing.T) {
		err := trapNew[trapUnexportedKey](t)
		if err == nil {
			t.Fatal("New accepted an unexported hash key")
		}
		trapRequireText(t, err, "pk", "unexported")
	})
}

// 9. An item DynamoDB would refuse as too large is refused before any KMS
// call, and nothing is written.

func TestTrapItemTooLargeBeforeKMS(t *testing.T) {
	ctx := context.Background()
	filler := func(n int) string { return strings.Repeat("x", n) }
	leak := filler(64)
	check := func(t *testing.T, err error, keys *enctest.Provider, db *trapDB) {
		t.Helper()
		if !errors.Is(err, repo.ErrItemTooLarge) {
			t.Fatalf("err = %v, want ErrItemTooLarge", err)
		}
		if n := keys.Generates.Load(); n != 0 {
			t.Errorf("%d GenerateDataKey calls for an item that cannot be written, want 0", n)
		}
		if puts, batchWrites := db.writes(); puts != 0 || batchWrites != 0 || db.count() != 0 {
			t.Errorf("%d PutItem, %d BatchWriteItem requests, %d items stored; want none", puts, batchWrites, db.count())
		}
		if strings.Contains(err.Error(), leak) {
			t.Error("error shows the plaintext")
		}
	}
	t.Run("500 KB encrypted", func(t *testing.T) {
		r, db, keys := trapRepo(t)
		err := r.Put(ctx, trapUser{PK: "u1", SSN: field.NewEncrypted(filler(500 << 10))})
		check(t, err, keys, db)
	})
	t.Run("350 KB plain and 100 KB encrypted", func(t *testing.T) {
		r, db, keys := trapRepo(t)
		err := r.Put(ctx, trapUser{PK: "u1", Bio: filler(350 << 10), SSN: field.NewEncrypted(filler(100 << 10))})
		check(t, err, keys, db)
	})
	t.Run("BatchPut with one large item", func(t *testing.T) {
		r, db, keys := trapRepo(t)
		items := []trapUser{
			{PK: "u1", Name: "small", SSN: field.NewEncrypted("1")},
			{PK: "u2", Name: "small", SSN: field.NewEncrypted("2")},
			{PK: "u3", Name: "large", SSN: field.NewEncrypted(filler(500 << 10))},
			{PK: "u4", Name: "small", SSN: field.NewEncrypted("4")},
		}
		err := r.BatchPut(ctx, items)
		check(t, err, keys, db)
	})
}

type trapNestedRole struct {
	Ref string `dynamodbav:"ref" repo:"range"`
}

type trapRoleInDocument struct {
	PK    string         `dynamodbav:"pk" repo:"hash"`
	Inner trapNestedRole `dynamodbav:"inner"`
}

type trapRoleEmbedded struct {
	trapNestedRole
	PK string `dynamodbav:"pk" repo:"hash"`
}

// A role tag on a member of a nested document names no attribute of the
// table and would do nothing: New refuses it. Embedded, the same type's
// fields are the item's own attributes, and the role holds.
func TestTrapRoleInNestedDocument(t *testing.T) {
	err := trapNew[trapRoleInDocument](t)
	if err == nil {
		t.Fatal("New accepted a role on a member of a nested document")
	}
	trapRequireText(t, err, "trapNestedRole.Ref", "range")
	if err := trapNew[trapRoleEmbedded](t); err != nil {
		t.Fatalf("embedded role refused: %v", err)
	}
}
