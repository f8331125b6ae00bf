package integration

import (
	"context"
	"encoding/base64"
	"errors"
	"math"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/dynoseal/dynoseal/dynotest"
	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

const engineSSN = "123-45-6789"

// engineCheckError checks that err is an *enc.Error for the ssn attribute and
// key, matches want, reads like want's message and holds no plaintext.
func engineCheckError(t *testing.T, err error, want error, op enc.Op, keyID string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	e, ok := enc.AsError(err)
	if !ok {
		t.Fatalf("err is not an *enc.Error: %T %v", err, err)
	}
	if e.Op != op || e.Attribute != "ssn" || e.KeyID != keyID {
		t.Fatalf("*enc.Error{Op:%q Attribute:%q KeyID:%q}, want %q ssn %q", e.Op, e.Attribute, e.KeyID, op, keyID)
	}
	if msg := err.Error(); !strings.Contains(msg, want.Error()) || strings.Contains(msg, engineSSN) {
		t.Fatalf("message %q should contain %q and no plaintext", msg, want.Error())
	}
}

func TestEngineNonexistentKeyOrAlias(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for name, keyID := range map[string]string{
		"alias":  "alias/missing-" + strings.TrimPrefix(f.alias, "alias/"),
		"key ID": "00000000-0000-4000-8000-000000000000",
	} {
		t.Run(name, func(t *testing.T) {
			reg := enc.NewRegistry()
			reg.MustRegister("pii", enc.Spec{KeyID: keyID})
			r := engineUsersOwnRegistry(t, f, repo.WithRegistry(reg))
			err := r.Put(ctx, User{PK: "U#1", SSN: field.NewEncrypted(engineSSN)})
			engineCheckError(t, err, enc.ErrKeyNotFound, enc.OpEncrypt, keyID)
			if item := f.engineRawOrNil(t, r.Table(), enginePK("U#1")); item != nil {
				t.Fatalf("an item was written: %v", item)
			}
		})
	}

	t.Run("decrypt under a missing key", func(t *testing.T) {
		w := users(t, f)
		if err := w.Put(ctx, User{PK: "U#2", SSN: field.NewEncrypted(engineSSN)}); err != nil {
			t.Fatal(err)
		}
		missing := "alias/missing-" + strings.TrimPrefix(f.alias, "alias/")
		reg := enc.NewRegistry()
		reg.MustRegister("pii", enc.Spec{KeyID: missing})
		r := engineRepoOn[User](t, f, w.Table(), repo.WithRegistry(reg))
		_, err := r.Get(ctx, repo.Key{Hash: "U#2"})
		engineCheckError(t, err, enc.ErrKeyNotFound, enc.OpDecrypt, missing)
	})
}

// engineUsersOwnRegistry is users() with a registry of the caller's own.
func engineUsersOwnRegistry(t *testing.T, f *fixture, opts ...repo.Option) *repo.Repo[User] {
	t.Helper()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: f.alias})
	fx := *f
	fx.reg = reg
	return users(t, &fx, opts...)
}

func TestEngineDisabledKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := users(t, f)
	if err := r.Put(ctx, User{PK: "U#1", SSN: field.NewEncrypted(engineSSN)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.KMS.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(f.keyID)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = f.env.KMS.EnableKey(context.Background(), &kms.EnableKeyInput{KeyId: aws.String(f.keyID)})
	})
	if f.env.Backend == "moto" {
		// moto records the key state but still answers GenerateDataKey and
		// Decrypt for a disabled key; AWS (and local-kms) answer
		// DisabledException.
		t.Skip("moto does not enforce key state")
	}
	err := r.Put(ctx, User{PK: "U#2", SSN: field.NewEncrypted(engineSSN)})
	engineCheckError(t, err, enc.ErrKeyDisabled, enc.OpEncrypt, f.alias)
	if item := f.engineRawOrNil(t, r.Table(), enginePK("U#2")); item != nil {
		t.Fatal("an item was written with a disabled key")
	}
	_, err = r.Get(ctx, repo.Key{Hash: "U#1"})
	engineCheckError(t, err, enc.ErrKeyDisabled, enc.OpDecrypt, f.alias)
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "DisabledException" {
		t.Fatalf("SDK error not reachable or not DisabledException: %v", err)
	}
}

func TestEngineStaticContext(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.reg.MustRegister("pii", enc.Spec{KeyID: f.alias, Context: map[string]string{"tenant": "acme-corp", "purpose": "pii"}})
	w := users(t, f)
	if err := w.Put(ctx, User{PK: "U#1", SSN: field.NewEncrypted(engineSSN)}); err != nil {
		t.Fatal(err)
	}

	// The same context, registered anew in another service, opens it.
	same := enc.NewRegistry()
	same.MustRegister("pii", enc.Spec{KeyID: f.alias, Context: map[string]string{"purpose": "pii", "tenant": "acme-corp"}})
	u, err := engineRepoOn[User](t, f, w.Table(), repo.WithRegistry(same)).Get(ctx, repo.Key{Hash: "U#1"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := u.SSN.Value(); err != nil || v != engineSSN {
		t.Fatalf("Value() = %q, %v", v, err)
	}

	for name, c := range map[string]map[string]string{
		"other tenant":  {"tenant": "other-corp", "purpose": "pii"},
		"missing pair":  {"tenant": "acme-corp"},
		"extra pair":    {"tenant": "acme-corp", "purpose": "pii", "x": "y"},
		"no context":    nil,
		"case of value": {"tenant": "ACME-corp", "purpose": "pii"},
	} {
		t.Run(name, func(t *testing.T) {
			reg := enc.NewRegistry()
			reg.MustRegister("pii", enc.Spec{KeyID: f.alias, Context: c})
			_, err := engineRepoOn[User](t, f, w.Table(), repo.WithRegistry(reg)).Get(ctx, repo.Key{Hash: "U#1"})
			engineCheckError(t, err, enc.ErrInvalidCiphertext, enc.OpDecrypt, f.alias)
		})
	}
}

func TestEngineInjectedAccessDenied(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	plain := users(t, f)
	if err := plain.Put(ctx, User{PK: "U#1", SSN: field.NewEncrypted(engineSSN)}); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"GenerateDataKey", "Decrypt"} {
		t.Run(op, func(t *testing.T) {
			var attempts atomic.Int64
			r := engineRepoOn[User](t, f, plain.Table(), repo.WithEncryptor(f.env.Encryptor(engineInjectKMSError("AccessDeniedException", &attempts, op))))
			var err error
			wantOp := enc.OpEncrypt
			if op == "GenerateDataKey" {
				err = r.Put(ctx, User{PK: "U#2", SSN: field.NewEncrypted(engineSSN)})
			} else {
				wantOp = enc.OpDecrypt
				_, err = r.Get(ctx, repo.Key{Hash: "U#1"})
			}
			engineCheckError(t, err, enc.ErrAccessDenied, wantOp, f.alias)
			if !strings.Contains(err.Error(), "access denied") {
				t.Fatalf("message %q", err)
			}
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDeniedException" {
				t.Fatalf("SDK error not reachable: %v", err)
			}
			if n := attempts.Load(); n != 1 {
				t.Fatalf("AccessDenied was tried %d times; it is not retryable", n)
			}
			if item := f.engineRawOrNil(t, r.Table(), enginePK("U#2")); item != nil {
				t.Fatal("an item was written without a data key")
			}
		})
	}
}

func TestEngineInjectedThrottling(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	plain := users(t, f)
	if err := plain.Put(ctx, User{PK: "U#1", SSN: field.NewEncrypted(engineSSN)}); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"GenerateDataKey", "Decrypt"} {
		t.Run(op, func(t *testing.T) {
			var attempts atomic.Int64
			r := engineRepoOn[User](t, f, plain.Table(), repo.WithEncryptor(f.env.Encryptor(engineInjectKMSError("ThrottlingException", &attempts, op))))
			var err error
			wantOp := enc.OpEncrypt
			if op == "GenerateDataKey" {
				err = r.Put(ctx, User{PK: "U#2", SSN: field.NewEncrypted(engineSSN)})
			} else {
				wantOp = enc.OpDecrypt
				_, err = r.Get(ctx, repo.Key{Hash: "U#1"})
			}
			engineCheckError(t, err, enc.ErrThrottled, wantOp, f.alias)
			if n := attempts.Load(); n != 3 {
				t.Fatalf("%d attempts, want the SDK's 3", n)
			}
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ThrottlingException" {
				t.Fatalf("SDK error not reachable: %v", err)
			}
		})
	}
}

func TestEngineMalformedStoredValue(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := users(t, f)
	shortEnvelope := enc.Prefix + base64.StdEncoding.EncodeToString([]byte{1, 0, 200, 1, 2, 3})
	for name, stored := range map[string]string{
		"not base64":      enc.Prefix + "@@not base64@@",
		"bad version":     enc.Prefix + base64.StdEncoding.EncodeToString(append([]byte{9, 0, 1, 7}, make([]byte, 40)...)),
		"truncated":       shortEnvelope,
		"prefix only":     enc.Prefix,
		"one byte":        enc.Prefix + "AQ==",
		"bad padding bit": enc.Prefix + "AR==",
	} {
		t.Run(name, func(t *testing.T) {
			f.rawPut(t, r.Table(), map[string]types.AttributeValue{"pk": s("U#bad"), "ssn": s(stored)})
			before := r.Encryptor().Stats().DecryptCalls
			_, err := r.Get(ctx, repo.Key{Hash: "U#bad"})
			engineCheckError(t, err, enc.ErrMalformed, enc.OpDecrypt, f.alias)
			if n := r.Encryptor().Stats().DecryptCalls - before; n != 0 {
				t.Fatalf("a malformed value cost %d Decrypt calls", n)
			}
		})
	}
}

func TestEngineWriteOnly(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	admin := users(t, f)
	if err := admin.Put(ctx, User{PK: "U#1", Email: "a@example.com", SSN: field.NewEncrypted(engineSSN)}); err != nil {
		t.Fatal(err)
	}
	stored := storedString(t, f.rawItem(t, admin.Table(), enginePK("U#1")), "ssn")

	ingest := engineRepoOn[User](t, f, admin.Table(), repo.WithMode(enc.WriteOnly))
	u, err := ingest.Get(ctx, repo.Key{Hash: "U#1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.SSN.Value(); !errors.Is(err, enc.ErrWriteOnly) || !strings.Contains(err.Error(), "cannot decrypt in WriteOnly mode") {
		t.Fatalf("Value() in WriteOnly: %v", err)
	}
	if u.SSN.Ciphertext() != stored {
		t.Fatalf("Ciphertext() = %q, want the stored %q", u.SSN.Ciphertext(), stored)
	}

	// Written back with a changed plain attribute: the sealed value is kept as stored.
	u.Email = "b@example.com"
	if err := ingest.Put(ctx, u); err != nil {
		t.Fatal(err)
	}
	raw := f.rawItem(t, admin.Table(), enginePK("U#1"))
	if storedString(t, raw, "ssn") != stored || storedString(t, raw, "email") != "b@example.com" {
		t.Fatalf("after a WriteOnly write-back: %v", raw)
	}

	// New values are sealed, and an admin opens them.
	if err := ingest.Put(ctx, User{PK: "U#2", SSN: field.NewEncrypted("987-65-4321")}); err != nil {
		t.Fatal(err)
	}
	got, err := admin.Get(ctx, repo.Key{Hash: "U#2"})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := got.SSN.Value(); v != "987-65-4321" {
		t.Fatalf("admin reads %q", v)
	}
	if st := ingest.Encryptor().Stats(); st.DecryptCalls != 0 || st.GenerateDataKeyCalls != 1 {
		t.Fatalf("WriteOnly KMS calls %+v, want one GenerateDataKey and no Decrypt", st)
	}
}

func TestEngineReadOnly(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	admin := users(t, f)
	if err := admin.Put(ctx, User{PK: "U#1", Email: "a@example.com", SSN: field.NewEncrypted(engineSSN)}); err != nil {
		t.Fatal(err)
	}
	before := f.rawItem(t, admin.Table(), enginePK("U#1"))
	report := engineRepoOn[User](t, f, admin.Table(), repo.WithMode(enc.ReadOnly))

	// A new item: refused before any write.
	err := report.Put(ctx, User{PK: "U#2", SSN: field.NewEncrypted("x")})
	engineCheckError(t, err, enc.ErrReadOnly, enc.OpEncrypt, f.alias)
	if !strings.Contains(err.Error(), "cannot encrypt in ReadOnly mode") {
		t.Fatalf("message %q", err)
	}
	if item := f.engineRawOrNil(t, admin.Table(), enginePK("U#2")); item != nil {
		t.Fatal("ReadOnly wrote a new item")
	}

	u, err := report.Get(ctx, repo.Key{Hash: "U#1"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := u.SSN.Value(); err != nil || v != engineSSN {
		t.Fatalf("ReadOnly Value() = %q, %v", v, err)
	}

	// A changed value: refused, and the stored item is untouched.
	changed := u
	changed.SSN.Set("000-00-0000")
	changed.Email = "changed@example.com"
	err = report.Put(ctx, changed)
	engineCheckError(t, err, enc.ErrReadOnly, enc.OpEncrypt, f.alias)
	if after := f.rawItem(t, admin.Table(), enginePK("U#1")); !reflect.DeepEqual(after, before) {
		t.Fatalf("ReadOnly changed the item:\nbefore %v\nafter  %v", before, after)
	}

	// Unchanged encrypted values go back as stored, with other changes.
	u.Email = "b@example.com"
	if err := report.Put(ctx, u); err != nil {
		t.Fatal(err)
	}
	after := f.rawItem(t, admin.Table(), enginePK("U#1"))
	if storedString(t, after, "ssn") != storedString(t, before, "ssn") || storedString(t, after, "email") != "b@example.com" {
		t.Fatalf("after a ReadOnly write-back: %v", after)
	}
	if st := report.Encryptor().Stats(); st.GenerateDataKeyCalls != 0 || st.DecryptCalls != 1 {
		t.Fatalf("ReadOnly KMS calls %+v, want no GenerateDataKey and one Decrypt", st)
	}
}

// The reference's three services, on one Go type and one table: ingest
// writes and cannot read, reports read and cannot write new values, admin
// does both. Both ways of choosing the mode are shown: repo.WithMode, and a
// registry per service whose spec carries the mode.
func TestEngineIngestReportAdminServices(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	admin := users(t, f) // ReadWrite, the default
	table := admin.Table()

	type service struct {
		ingest, report *repo.Repo[User]
	}
	byRegistry := func(m enc.Mode) repo.Option {
		reg := enc.NewRegistry()
		reg.MustRegister("pii", enc.Spec{KeyID: f.alias, Mode: m})
		return repo.WithRegistry(reg)
	}
	for name, svc := range map[string]service{
		"WithMode": {
			ingest: engineRepoOn[User](t, f, table, repo.WithMode(enc.WriteOnly)),
			report: engineRepoOn[User](t, f, table, repo.WithMode(enc.ReadOnly)),
		},
		"registry per service": {
			ingest: engineRepoOn[User](t, f, table, byRegistry(enc.WriteOnly)),
			report: engineRepoOn[User](t, f, table, byRegistry(enc.ReadOnly)),
		},
	} {
		t.Run(name, func(t *testing.T) {
			key := "U#" + name
			if err := svc.ingest.Put(ctx, User{PK: key, SSN: field.NewEncrypted(engineSSN)}); err != nil {
				t.Fatalf("IngestService write: %v", err)
			}
			in, err := svc.ingest.Get(ctx, repo.Key{Hash: key})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := in.SSN.Value(); !errors.Is(err, enc.ErrWriteOnly) {
				t.Fatalf("IngestService read: %v, want ErrWriteOnly", err)
			}

			rep, err := svc.report.Get(ctx, repo.Key{Hash: key})
			if err != nil {
				t.Fatal(err)
			}
			if v, err := rep.SSN.Value(); err != nil || v != engineSSN {
				t.Fatalf("ReportService read: %q, %v", v, err)
			}
			rep.SSN.Set("000-00-0000")
			if err := svc.report.Put(ctx, rep); !errors.Is(err, enc.ErrReadOnly) {
				t.Fatalf("ReportService write: %v, want ErrReadOnly", err)
			}

			ad, err := admin.Get(ctx, repo.Key{Hash: key})
			if err != nil {
				t.Fatal(err)
			}
			ad.SSN.Set("111-11-1111")
			if err := admin.Put(ctx, ad); err != nil {
				t.Fatalf("AdminService write: %v", err)
			}
			again, err := svc.report.Get(ctx, repo.Key{Hash: key})
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := again.SSN.Value(); v != "111-11-1111" {
				t.Fatalf("ReportService sees %q after the admin's change", v)
			}
			if st := svc.ingest.Encryptor().Stats(); st.DecryptCalls != 0 {
				t.Fatalf("IngestService made %d Decrypt calls", st.DecryptCalls)
			}
			if st := svc.report.Encryptor().Stats(); st.GenerateDataKeyCalls != 0 {
				t.Fatalf("ReportService made %d GenerateDataKey calls", st.GenerateDataKeyCalls)
			}
		})
	}
}

func TestEngineUnicodeAndEmptyValues(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := users(t, f)
	values := map[string]string{
		"empty":      "",
		"multi-byte": "Grüße, 日本語, Ελληνικά, עברית",
		"emoji":      "🙂👩‍👩‍👧‍👦🏳️‍🌈",
		"nul":        "a\x00b\x00",
		"all":        "\x00é🙂\U0010FFFF\t\n",
	}
	for name, v := range values {
		if err := r.Put(ctx, User{PK: "U#" + name, SSN: field.NewEncrypted(v)}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for name, v := range values {
		stored := storedString(t, f.rawItem(t, r.Table(), enginePK("U#"+name)), "ssn")
		if !enc.IsEncrypted(stored) || (v != "" && strings.Contains(stored, v)) {
			t.Fatalf("%s stored as %q", name, stored)
		}
		u, err := r.Get(ctx, repo.Key{Hash: "U#" + name})
		if err != nil {
			t.Fatal(err)
		}
		got, err := u.SSN.Value()
		if err != nil || got != v || !u.SSN.IsPresent() {
			t.Fatalf("%s: Value() = %q, %v (present %v), want %q", name, got, err, u.SSN.IsPresent(), v)
		}
	}
}

type engineBlob struct {
	PK   string                  `dynamodbav:"pk" repo:"hash"`
	Data field.Encrypted[[]byte] `dynamodbav:"data" enc:"pii"`
}

// DynamoDB items are at most 400 KB, and a sealed value is base64 (4/3 of
// the bytes) of the plaintext plus the envelope, so the largest value that
// fits is about 299 KB. A 350 KB value is sealed but cannot be stored: Put
// refuses it with repo.ErrItemTooLarge before sending it, and nothing is written.
func TestEngineLargeValues(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.reg.MustRegister("pii", enc.Spec{KeyID: f.alias})
	fits := 290 * 1024
	r := engineTable[engineBlob](t, f)

	big := make([]byte, fits)
	for i := range big {
		big[i] = byte(i*7 + i>>8)
	}
	if err := r.Put(ctx, engineBlob{PK: "B#fits", Data: field.NewEncrypted(big)}); err != nil {
		t.Fatalf("%d KB: %v", fits/1024, err)
	}
	got, err := r.Get(ctx, repo.Key{Hash: "B#fits"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := got.Data.Value(); err != nil || string(v) != string(big) {
		t.Fatalf("%d KB value came back different (%d bytes, %v)", fits/1024, len(v), err)
	}

	huge := make([]byte, 350*1024)
	copy(huge, "PLAINTEXT-MARKER")
	err = r.Put(ctx, engineBlob{PK: "B#huge", Data: field.NewEncrypted(huge)})
	if !errors.Is(err, repo.ErrItemTooLarge) || !strings.Contains(err.Error(), `"data"`) {
		t.Fatalf("350 KB value: %v, want repo.ErrItemTooLarge naming the attribute", err)
	}
	if strings.Contains(err.Error(), "PLAINTEXT-MARKER") {
		t.Fatal("the error contains the plaintext")
	}
	if item := f.engineRawOrNil(t, r.Table(), enginePK("B#huge")); item != nil {
		t.Fatal("a too-large item was written")
	}
}

type engineKinds struct {
	PK      string                               `dynamodbav:"pk" repo:"hash"`
	Int     field.Encrypted[int64]               `dynamodbav:"int" enc:"pii"`
	Uint    field.Encrypted[uint64]              `dynamodbav:"uint" enc:"pii"`
	Float   field.Encrypted[float64]             `dynamodbav:"float" enc:"pii"`
	When    field.Encrypted[time.Time]           `dynamodbav:"when" enc:"pii"`
	Profile field.Encrypted[engineProfile]       `dynamodbav:"profile" enc:"pii"`
	Tags    field.Encrypted[map[string][]string] `dynamodbav:"tags" enc:"pii"`
	Flag    field.Encrypted[bool]                `dynamodbav:"flag" enc:"pii"`
	Absent  field.Encrypted[string]              `dynamodbav:"absent,omitempty" enc:"pii"`
	Null    field.Encrypted[string]              `dynamodbav:"null" enc:"pii"`
	Cards   []engineCard                         `dynamodbav:"cards"`
	Notes   map[string]field.Encrypted[string]   `dynamodbav:"notes" enc:"pii"`
	Nested  *engineCard                          `dynamodbav:"nested"`
	Pins    []field.Encrypted[int]               `dynamodbav:"pins" enc:"pii"`
	Raw     map[string]field.Encrypted[[]byte]   `dynamodbav:"raw,omitempty" enc:"pii"`
}

type engineProfile struct {
	Name string
	Born time.Time
}

type engineCard struct {
	Number field.Encrypted[string] `dynamodbav:"number" enc:"pii"`
	Last4  string                  `dynamodbav:"last4"`
}

// Every kind of T and every nesting, through real DynamoDB and KMS: one data
// key for the whole item, nothing stored in plaintext, everything back.
func TestEngineKindsAndNestingRoundTrip(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.reg.MustRegister("pii", enc.Spec{KeyID: f.alias})
	r := engineTable[engineKinds](t, f)
	when := time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.FixedZone("", 5*3600+30*60))
	in := engineKinds{
		PK: "K#1", Int: field.NewEncrypted(int64(math.MinInt64)), Uint: field.NewEncrypted(uint64(math.MaxUint64)),
		Float: field.NewEncrypted(math.SmallestNonzeroFloat64), When: field.NewEncrypted(when),
		Profile: field.NewEncrypted(engineProfile{Name: "PLAINTEXT-name", Born: when}),
		Tags:    field.NewEncrypted(map[string][]string{"k": {"PLAINTEXT-tag"}}), Flag: field.NewEncrypted(true),
		Cards:  []engineCard{{Number: field.NewEncrypted("PLAINTEXT-card-1"), Last4: "1111"}, {Number: field.NewEncrypted("PLAINTEXT-card-2")}},
		Notes:  map[string]field.Encrypted[string]{"a": field.NewEncrypted("PLAINTEXT-note")},
		Nested: &engineCard{Number: field.NewEncrypted("PLAINTEXT-nested")},
		Pins:   []field.Encrypted[int]{field.NewEncrypted(1234)},
	}
	if err := r.Put(ctx, in); err != nil {
		t.Fatal(err)
	}
	raw := f.rawItem(t, r.Table(), enginePK("K#1"))
	if _, ok := raw["absent"]; ok {
		t.Fatal("an absent omitempty value was stored")
	}
	if _, ok := raw["null"].(*types.AttributeValueMemberNULL); !ok {
		t.Fatalf("an absent value was stored as %#v, want NULL", raw["null"])
	}
	if dump := strings.Join(engineFlatten(&types.AttributeValueMemberM{Value: raw}), "\n"); strings.Contains(dump, "PLAINTEXT") || strings.Contains(dump, "1234") {
		t.Fatalf("plaintext in the stored item:\n%s", dump)
	}
	if st := r.Encryptor().Stats(); st.GenerateDataKeyCalls != 1 {
		t.Fatalf("%d GenerateDataKey calls for one item under one spec", st.GenerateDataKeyCalls)
	}

	out, err := r.Get(ctx, repo.Key{Hash: "K#1"})
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got, want any, err error) {
		t.Helper()
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, %v; want %#v", name, got, err, want)
		}
	}
	iv, err := out.Int.Value()
	check("int", iv, int64(math.MinInt64), err)
	uv, err := out.Uint.Value()
	check("uint", uv, uint64(math.MaxUint64), err)
	fv, err := out.Float.Value()
	check("float", fv, math.SmallestNonzeroFloat64, err)
	wv, err := out.When.Value()
	if err != nil || !wv.Equal(when) {
		t.Errorf("when = %v, %v", wv, err)
	}
	if _, off := wv.Zone(); off != 5*3600+30*60 {
		t.Errorf("offset %d lost", off)
	}
	pv, err := out.Profile.Value()
	if err != nil || pv.Name != "PLAINTEXT-name" || !pv.Born.Equal(when) {
		t.Errorf("profile = %#v, %v", pv, err)
	}
	tv, err := out.Tags.Value()
	check("tags", tv, map[string][]string{"k": {"PLAINTEXT-tag"}}, err)
	bv, err := out.Flag.Value()
	check("flag", bv, true, err)
	c1, err := out.Cards[0].Number.Value()
	check("cards[0]", c1, "PLAINTEXT-card-1", err)
	nv, err := out.Notes["a"].Value()
	check("notes.a", nv, "PLAINTEXT-note", err)
	dv, err := out.Nested.Number.Value()
	check("nested", dv, "PLAINTEXT-nested", err)
	pin, err := out.Pins[0].Value()
	check("pins[0]", pin, 1234, err)
	if out.Absent.IsPresent() || out.Null.IsPresent() {
		t.Error("absent values came back present")
	}
	if st := r.Encryptor().Stats(); st.DecryptCalls != 1 {
		t.Errorf("%d Decrypt calls for one data key", st.DecryptCalls)
	}
}

// engineFlatten lists every string, number and binary in an attribute value tree.
func engineFlatten(av types.AttributeValue) []string {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return []string{v.Value}
	case *types.AttributeValueMemberN:
		return []string{v.Value}
	case *types.AttributeValueMemberB:
		return []string{string(v.Value)}
	case *types.AttributeValueMemberL:
		var out []string
		for _, e := range v.Value {
			out = append(out, engineFlatten(e)...)
		}
		return out
	case *types.AttributeValueMemberM:
		var out []string
		for k, e := range v.Value {
			out = append(out, k)
			out = append(out, engineFlatten(e)...)
		}
		return out
	}
	return nil
}

func engineTable[T any](t *testing.T, f *fixture) *repo.Repo[T] {
	t.Helper()
	return dynotest.Table[T](t, f.env, repo.WithRegistry(f.reg))
}

func TestEngineWrongKeyOnRead(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	w := users(t, f)
	if err := w.Put(ctx, User{PK: "U#1", SSN: field.NewEncrypted(engineSSN)}); err != nil {
		t.Fatal(err)
	}
	_, otherAlias := f.env.Key(t)
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: otherAlias})
	_, err := engineRepoOn[User](t, f, w.Table(), repo.WithRegistry(reg)).Get(ctx, repo.Key{Hash: "U#1"})
	if err == nil {
		t.Fatal("a value sealed under one key opened under another")
	}
	if f.env.Backend == "moto" {
		// moto answers a Decrypt whose KeyId is not the ciphertext's key with
		// AccessDeniedException; AWS (and local-kms) answer
		// IncorrectKeyException, which maps to ErrInvalidCiphertext.
		t.Skipf("moto reports a wrong key as access denied: %v", err)
	}
	engineCheckError(t, err, enc.ErrInvalidCiphertext, enc.OpDecrypt, otherAlias)
}
