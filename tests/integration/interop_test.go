package integration

// Interoperability with an implementation of the stored format that shares
// no code with this library: tests/interop/dynoseal_format.py, written in
// Python from docs/format.md with boto3 and the cryptography package. The
// values exchanged are listed once, in tests/interop/interop_fixture.py
// (its "catalogue"), and as Go values in interopWant* below.
//
//   - TestInteropPythonSelftest: the Python side reproduces the worked
//     example of docs/format.md (no KMS).
//   - TestInteropFixtureAsStored: the checked-in values sealed by Python
//     (tests/interop/testdata/python-fixture.json) open through repo.Get,
//     byte for byte as checked in. Needs a KMS that can import key material.
//   - TestInteropFixtureRewrapped: the same fixture's version-1 values with
//     their data keys encrypted again under a fresh key, for a KMS that
//     cannot import key material (moto).
//   - TestInteropGoSealsPythonOpens: repo.Put seals, Python opens.
//   - TestInteropPythonSealsGoOpens: Python seals now, repo.Get opens.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/dynoseal/dynoseal/dynotest"
	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

const (
	interopDir     = "../interop"
	interopFixture = "../interop/testdata/python-fixture.json"
)

// InteropCard is sealed as JSON: its json names are what Python writes.
type InteropCard struct {
	Number string `json:"number"`
	Label  string `json:"label"`
}

type InteropProfile struct {
	SSN field.Encrypted[string] `dynamodbav:"ssn" enc:"interop-v2"`
	Odd field.Encrypted[string] `dynamodbav:"odd.name" enc:"interop-v2"`
}

type InteropWalletCard struct {
	Number field.Encrypted[string] `dynamodbav:"number" enc:"interop-v2"`
}

// InteropItem holds every value of the catalogue's "InteropItem".
type InteropItem struct {
	PK       string                             `dynamodbav:"pk" repo:"hash"`
	Tenant   string                             `dynamodbav:"tenant"`
	ASCII    field.Encrypted[string]            `dynamodbav:"ascii" enc:"interop-plain"`
	UTF8     field.Encrypted[string]            `dynamodbav:"utf8" enc:"interop-plain"`
	Empty    field.Encrypted[string]            `dynamodbav:"empty" enc:"interop-plain"`
	Long     field.Encrypted[string]            `dynamodbav:"long" enc:"interop-plain"`
	Bytes    field.Encrypted[[]byte]            `dynamodbav:"bytes" enc:"interop-plain"`
	Int64    field.Encrypted[int64]             `dynamodbav:"int64" enc:"interop-plain"`
	Float    field.Encrypted[float64]           `dynamodbav:"float" enc:"interop-plain"`
	Time     field.Encrypted[time.Time]         `dynamodbav:"time" enc:"interop-plain"`
	TimeUTC  field.Encrypted[time.Time]         `dynamodbav:"time_utc" enc:"interop-plain"`
	Card     field.Encrypted[InteropCard]       `dynamodbav:"card" enc:"interop-plain"`
	Ctx      field.Encrypted[string]            `dynamodbav:"ctx" enc:"interop-ctx"`
	ByTenant field.Encrypted[string]            `dynamodbav:"by_tenant" enc:"interop-tenant"`
	V2       field.Encrypted[string]            `dynamodbav:"v2" enc:"interop-v2"`
	Odd      field.Encrypted[string]            `dynamodbav:"odd.name" enc:"interop-v2"`
	Profile  InteropProfile                     `dynamodbav:"profile"`
	Cards    []InteropWalletCard                `dynamodbav:"cards"`
	Phones   map[string]field.Encrypted[string] `dynamodbav:"phones" enc:"interop-v2"`
	Pins     []field.Encrypted[int64]           `dynamodbav:"pins" enc:"interop-v2"`
}

// InteropEntry has a number range key, bound in version 2 in canonical form.
type InteropEntry struct {
	Account string                  `dynamodbav:"account" repo:"hash"`
	Seq     int64                   `dynamodbav:"seq" repo:"range"`
	Secret  field.Encrypted[string] `dynamodbav:"secret" enc:"interop-v2"`
}

// InteropReading has a fractional number range key.
type InteropReading struct {
	Sensor string                  `dynamodbav:"sensor" repo:"hash"`
	At     float64                 `dynamodbav:"at" repo:"range"`
	Secret field.Encrypted[string] `dynamodbav:"secret" enc:"interop-v2"`
}

// InteropBlob has a binary hash key.
type InteropBlob struct {
	ID     []byte                  `dynamodbav:"id" repo:"hash"`
	Secret field.Encrypted[string] `dynamodbav:"secret" enc:"interop-v2"`
}

// ---------------------------------------------------------------- the values, as Go sees them

func interopLongText() string {
	var b strings.Builder
	for i := range 250 {
		fmt.Fprintf(&b, "%05d the quick brown fox jumps over the lazy dog \u2014 caf\u00e9 \u2713\n", i)
	}
	return b.String()
}

func interopAllBytes() []byte {
	b := make([]byte, 512)
	for i := range 256 {
		b[i], b[511-i] = byte(i), byte(i)
	}
	return b
}

const (
	interopPK     = "INTEROP#1"
	interopTenant = "acme"
)

var interopBlobID = []byte("\x00\xffkey\x10")

func interopWantItem() InteropItem {
	return InteropItem{
		PK:       interopPK,
		Tenant:   interopTenant,
		ASCII:    field.NewEncrypted("123-45-6789"),
		UTF8:     field.NewEncrypted("Grüße aus Köln, 東京, Ελληνικά, 🔐"),
		Empty:    field.NewEncrypted(""),
		Long:     field.NewEncrypted(interopLongText()),
		Bytes:    field.NewEncrypted(interopAllBytes()),
		Int64:    field.NewEncrypted(int64(math.MinInt64)),
		Float:    field.NewEncrypted(-1.5e-7),
		Time:     field.NewEncrypted(time.Date(2024, 2, 29, 12, 34, 56, 123456789, time.FixedZone("", 5*3600+30*60))),
		TimeUTC:  field.NewEncrypted(time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC)),
		Card:     field.NewEncrypted(InteropCard{Number: "4111 1111 1111 1111", Label: `a<b&c> "quoted" é`}),
		Ctx:      field.NewEncrypted("sealed under a static context"),
		ByTenant: field.NewEncrypted("sealed under the tenant's context"),
		V2:       field.NewEncrypted("bound to its attribute and item"),
		Odd:      field.NewEncrypted("an attribute name with a dot"),
		Profile:  InteropProfile{SSN: field.NewEncrypted("078-05-1120"), Odd: field.NewEncrypted("a member name with a dot")},
		Cards: []InteropWalletCard{
			{Number: field.NewEncrypted("4000 0000 0000 0002")},
			{Number: field.NewEncrypted("5555 5555 5555 4444")},
		},
		Phones: map[string]field.Encrypted[string]{
			"home":         field.NewEncrypted("+44 20 7946 0000"),
			"wörk \"2\"\t": field.NewEncrypted("+1 202 555 0100"),
		},
		Pins: []field.Encrypted[int64]{field.NewEncrypted(int64(1234)), field.NewEncrypted(int64(9876))},
	}
}

var interopSeqs = []int64{42, -7, 0, 1000}

func interopWantEntry(seq int64) InteropEntry {
	return InteropEntry{Account: "ACC#1", Seq: seq, Secret: field.NewEncrypted(fmt.Sprintf("entry %d", seq))}
}

var interopReadings = []float64{0.001, -0.5, 1e30}

func interopWantReading(at float64) InteropReading {
	return InteropReading{Sensor: "S#1", At: at, Secret: field.NewEncrypted(fmt.Sprintf("reading %s", strconv.FormatFloat(at, 'f', -1, 64)))}
}

func interopWantBlob() InteropBlob {
	return InteropBlob{ID: interopBlobID, Secret: field.NewEncrypted("binary key")}
}

// interopExact are the plaintext bytes docs/format.md and
// docs/field-encryption.md imply for the JSON-encoded values: compact
// encoding/json output without HTML escaping, time.Time as RFC 3339 with
// nanoseconds and offset. (The float's spelling is left to Python's check:
// the docs promise a bit-exact round trip, not digits.)
var interopExact = map[string]string{
	"int64":    `-9223372036854775808`,
	"time":     `"2024-02-29T12:34:56.123456789+05:30"`,
	"time_utc": `"1999-12-31T23:59:59Z"`,
	"card":     `{"number":"4111 1111 1111 1111","label":"a<b&c> \"quoted\" é"}`,
	"pins/0":   `1234`,
}

// interopLookup returns the value of the Encrypted at loc in item (an
// InteropItem, InteropEntry or InteropBlob).
func interopLookup(item any, loc []any) (any, error) {
	name := func(i int) string { s, _ := loc[i].(string); return s }
	index := func(i int) int { f, _ := loc[i].(float64); return int(f) }
	switch it := item.(type) {
	case InteropItem:
		switch name(0) {
		case "ascii":
			return it.ASCII.Value()
		case "utf8":
			return it.UTF8.Value()
		case "empty":
			return it.Empty.Value()
		case "long":
			return it.Long.Value()
		case "bytes":
			return it.Bytes.Value()
		case "int64":
			return it.Int64.Value()
		case "float":
			return it.Float.Value()
		case "time":
			return it.Time.Value()
		case "time_utc":
			return it.TimeUTC.Value()
		case "card":
			return it.Card.Value()
		case "ctx":
			return it.Ctx.Value()
		case "by_tenant":
			return it.ByTenant.Value()
		case "v2":
			return it.V2.Value()
		case "odd.name":
			return it.Odd.Value()
		case "profile":
			if name(1) == "odd.name" {
				return it.Profile.Odd.Value()
			}
			return it.Profile.SSN.Value()
		case "cards":
			if i := index(1); i < len(it.Cards) {
				return it.Cards[i].Number.Value()
			}
			return nil, fmt.Errorf("item has %d cards", len(it.Cards))
		case "phones":
			v, ok := it.Phones[name(1)]
			if !ok {
				return nil, fmt.Errorf("item has no phone %q", name(1))
			}
			return v.Value()
		case "pins":
			if i := index(1); i < len(it.Pins) {
				return it.Pins[i].Value()
			}
			return nil, fmt.Errorf("item has %d pins", len(it.Pins))
		}
	case InteropEntry:
		if name(0) == "secret" {
			return it.Secret.Value()
		}
	case InteropReading:
		if name(0) == "secret" {
			return it.Secret.Value()
		}
	case InteropBlob:
		if name(0) == "secret" {
			return it.Secret.Value()
		}
	}
	return nil, fmt.Errorf("no encrypted value at %v in %T", loc, item)
}

// interopEqual compares opened values; times must agree on the instant, the
// offset, and on being UTC.
func interopEqual(got, want any) bool {
	if g, ok := got.(time.Time); ok {
		w, ok := want.(time.Time)
		_, goff := g.Zone()
		_, woff := w.Zone()
		return ok && g.Equal(w) && goff == woff && (g.Location() == time.UTC) == (w.Location() == time.UTC)
	}
	return reflect.DeepEqual(got, want)
}

func locKey(loc []any) string {
	parts := make([]string, len(loc))
	for i, p := range loc {
		parts[i] = fmt.Sprint(p)
	}
	return strings.Join(parts, "/")
}

// ---------------------------------------------------------------- the Python side's documents

type interopSpec struct {
	Context     map[string]string `json:"context"`
	ContextFrom map[string]string `json:"context_from"`
	Version     byte              `json:"version"`
}

type interopValue struct {
	Location   []any             `json:"location"`
	Path       string            `json:"path"`
	Spec       string            `json:"spec"`
	Kind       string            `json:"kind"`
	Value      json.RawMessage   `json:"value"`
	Plaintext  []byte            `json:"plaintext_b64"`
	Context    map[string]string `json:"context"`
	Version    byte              `json:"version"`
	BindingKey map[string]any    `json:"binding_key,omitempty"`
	Stored     string            `json:"stored"`
}

type interopItemDoc struct {
	Type   string         `json:"type"`
	Item   map[string]any `json:"item"`
	Key    map[string]any `json:"key"`
	Values []interopValue `json:"values"`
}

type interopDoc struct {
	Specs map[string]interopSpec `json:"specs"`
	Items []interopItemDoc       `json:"items"`
	KMS   *struct {
		KeyID          string `json:"key_id"`
		KeyMaterialHex string `json:"key_material_hex"`
	} `json:"kms"`
}

func readInteropDoc(t *testing.T, data []byte) *interopDoc {
	t.Helper()
	var doc interopDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("interop document: %v", err)
	}
	if len(doc.Items) == 0 || len(doc.Specs) == 0 {
		t.Fatal("interop document has no items or specs")
	}
	return &doc
}

// interopPython runs a script of tests/interop with the Env's KMS endpoint,
// region and credentials, feeding it stdin (as JSON unless nil).
func interopPython(t *testing.T, env *dynotest.Env, stdin any, script string, args ...string) []byte {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 (with boto3 and cryptography) is needed for the interop tests: %v", err)
	}
	path, err := filepath.Abs(filepath.Join(interopDir, script))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{path}, args...)...)
	cmd.Env = os.Environ()
	if env != nil {
		endpoint := os.Getenv("AWS_ENDPOINT_URL_KMS")
		if endpoint == "" && env.Config.BaseEndpoint != nil {
			endpoint = *env.Config.BaseEndpoint
		}
		creds, err := env.Config.Credentials.Retrieve(ctx)
		if err != nil {
			t.Fatalf("credentials for python: %v", err)
		}
		cmd.Env = append(cmd.Env,
			"AWS_ENDPOINT_URL_KMS="+endpoint,
			"AWS_REGION="+env.Config.Region, "AWS_DEFAULT_REGION="+env.Config.Region,
			"AWS_ACCESS_KEY_ID="+creds.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+creds.SecretAccessKey,
			"AWS_SESSION_TOKEN="+creds.SessionToken)
	}
	if stdin != nil {
		in, err := json.Marshal(stdin)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin = bytes.NewReader(in)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 %s %s: %v\n%s%s", script, strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

// ---------------------------------------------------------------- DynamoDB JSON

func fromDynamoJSON(t *testing.T, v any) types.AttributeValue {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		t.Fatalf("not a DynamoDB JSON attribute value: %v", v)
	}
	for typ, x := range m {
		switch typ {
		case "S":
			return &types.AttributeValueMemberS{Value: x.(string)}
		case "N":
			return &types.AttributeValueMemberN{Value: x.(string)}
		case "B":
			b, err := base64.StdEncoding.DecodeString(x.(string))
			if err != nil {
				t.Fatal(err)
			}
			return &types.AttributeValueMemberB{Value: b}
		case "BOOL":
			return &types.AttributeValueMemberBOOL{Value: x.(bool)}
		case "NULL":
			return &types.AttributeValueMemberNULL{Value: true}
		case "M":
			return &types.AttributeValueMemberM{Value: fromDynamoJSONMap(t, x.(map[string]any))}
		case "L":
			var l []types.AttributeValue
			for _, e := range x.([]any) {
				l = append(l, fromDynamoJSON(t, e))
			}
			return &types.AttributeValueMemberL{Value: l}
		}
	}
	t.Fatalf("unsupported DynamoDB JSON %v", v)
	return nil
}

func fromDynamoJSONMap(t *testing.T, m map[string]any) map[string]types.AttributeValue {
	t.Helper()
	out := make(map[string]types.AttributeValue, len(m))
	for k, v := range m {
		out[k] = fromDynamoJSON(t, v)
	}
	return out
}

// keyToDynamoJSON gives the key attributes of a raw item in DynamoDB JSON.
func keyToDynamoJSON(t *testing.T, item map[string]types.AttributeValue, names ...string) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, n := range names {
		switch v := item[n].(type) {
		case *types.AttributeValueMemberS:
			out[n] = map[string]any{"S": v.Value}
		case *types.AttributeValueMemberN:
			out[n] = map[string]any{"N": v.Value}
		case *types.AttributeValueMemberB:
			out[n] = map[string]any{"B": base64.StdEncoding.EncodeToString(v.Value)}
		default:
			t.Fatalf("key attribute %s is %#v", n, item[n])
		}
	}
	return out
}

// storedAt is the string at loc in a raw item.
func storedAt(t *testing.T, item map[string]types.AttributeValue, loc []any) string {
	t.Helper()
	var cur types.AttributeValue = &types.AttributeValueMemberM{Value: item}
	for _, step := range loc {
		switch c := cur.(type) {
		case *types.AttributeValueMemberM:
			cur = c.Value[fmt.Sprint(step)]
		case *types.AttributeValueMemberL:
			i := int(step.(float64))
			if i >= len(c.Value) {
				t.Fatalf("%v: list has %d elements", loc, len(c.Value))
			}
			cur = c.Value[i]
		default:
			t.Fatalf("%v: %#v is not a map or list", loc, cur)
		}
	}
	s, ok := cur.(*types.AttributeValueMemberS)
	if !ok {
		t.Fatalf("%v: stored value is %#v, want a string", loc, cur)
	}
	return s.Value
}

// ---------------------------------------------------------------- tables and checks

type interopTables struct {
	item    *repo.Repo[InteropItem]
	entry   *repo.Repo[InteropEntry]
	reading *repo.Repo[InteropReading]
	blob    *repo.Repo[InteropBlob]
}

// newInteropTables registers the document's specs under keyID and makes a
// table for each type.
func newInteropTables(t *testing.T, env *dynotest.Env, doc *interopDoc, keyID string) interopTables {
	t.Helper()
	reg := enc.NewRegistry()
	for name, s := range doc.Specs {
		reg.MustRegister(name, enc.Spec{KeyID: keyID, Context: s.Context, ContextFrom: s.ContextFrom, Version: s.Version})
	}
	return interopTables{
		item:    dynotest.Table[InteropItem](t, env, repo.WithRegistry(reg)),
		entry:   dynotest.Table[InteropEntry](t, env, repo.WithRegistry(reg)),
		reading: dynotest.Table[InteropReading](t, env, repo.WithRegistry(reg)),
		blob:    dynotest.Table[InteropBlob](t, env, repo.WithRegistry(reg)),
	}
}

func (tb interopTables) table(typ string) string {
	switch typ {
	case "InteropItem":
		return tb.item.Table()
	case "InteropEntry":
		return tb.entry.Table()
	case "InteropReading":
		return tb.reading.Table()
	case "InteropBlob":
		return tb.blob.Table()
	}
	panic("unknown interop type " + typ)
}

// interopWant gives the Go values the catalogue item it stands for.
func interopWant(t *testing.T, it interopItemDoc) any {
	t.Helper()
	key := fromDynamoJSONMap(t, it.Key)
	switch it.Type {
	case "InteropItem":
		want := interopWantItem()
		want.PK = key["pk"].(*types.AttributeValueMemberS).Value
		return want
	case "InteropEntry":
		seq, err := strconv.ParseInt(key["seq"].(*types.AttributeValueMemberN).Value, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return interopWantEntry(seq)
	case "InteropReading":
		at, err := strconv.ParseFloat(key["at"].(*types.AttributeValueMemberN).Value, 64)
		if err != nil {
			t.Fatal(err)
		}
		return interopWantReading(at)
	case "InteropBlob":
		return interopWantBlob()
	}
	t.Fatalf("unknown interop type %q", it.Type)
	return nil
}

// get reads the item of it through the repository.
func (tb interopTables) get(t *testing.T, it interopItemDoc) (any, error) {
	t.Helper()
	ctx := context.Background()
	switch want := interopWant(t, it).(type) {
	case InteropItem:
		return tb.item.Get(ctx, repo.Key{Hash: want.PK})
	case InteropEntry:
		return tb.entry.Get(ctx, repo.Key{Hash: want.Account, Range: want.Seq})
	case InteropReading:
		return tb.reading.Get(ctx, repo.Key{Hash: want.Sensor, Range: want.At})
	case InteropBlob:
		return tb.blob.Get(ctx, repo.Key{Hash: want.ID})
	}
	return nil, nil
}

// putAndOpen writes each item of doc as it is (raw PutItem) and checks that
// repo.Get opens every value to the Go value it stands for.
func (tb interopTables) putAndOpen(t *testing.T, f *fixture, doc *interopDoc) {
	t.Helper()
	opened := 0
	for _, it := range doc.Items {
		f.rawPut(t, tb.table(it.Type), fromDynamoJSONMap(t, it.Item))
		want := interopWant(t, it)
		got, err := tb.get(t, it)
		if err != nil {
			t.Errorf("Get %s %v: %v", it.Type, it.Key, err)
			continue
		}
		for _, v := range it.Values {
			g, err := interopLookup(got, v.Location)
			if err != nil {
				t.Errorf("%s %s (v%d, sealed by Python): %v", it.Type, v.Path, v.Version, err)
				continue
			}
			w, err := interopLookup(want, v.Location)
			if err != nil {
				t.Fatalf("%s %v: no Go value to compare with: %v", it.Type, v.Location, err)
			}
			if !interopEqual(g, w) {
				t.Errorf("%s %s (v%d, sealed by Python): Go opened %#v, want %#v", it.Type, v.Path, v.Version, g, w)
				continue
			}
			opened++
		}
	}
	t.Logf("opened %d values sealed by Python", opened)
}

// checkCatalogue checks that the document's plaintexts are what the Go
// values encode to, per the docs, so the two lists cannot drift apart.
func checkCatalogue(t *testing.T, doc *interopDoc) {
	t.Helper()
	seen := 0
	for _, it := range doc.Items {
		for _, v := range it.Values {
			w, err := interopLookup(interopWant(t, it), v.Location)
			if err != nil {
				t.Errorf("catalogue value %s %v has no Go counterpart: %v", it.Type, v.Location, err)
				continue
			}
			var exact []byte
			switch x := w.(type) {
			case string:
				exact = []byte(x)
			case []byte:
				exact = x
			default:
				if e, ok := interopExact[locKey(v.Location)]; ok {
					exact = []byte(e)
				}
			}
			if exact != nil && !bytes.Equal(v.Plaintext, exact) {
				t.Errorf("catalogue %s %v: Python's plaintext %q, Go's value encodes to %q", it.Type, v.Location, v.Plaintext, exact)
			}
			seen++
		}
	}
	if seen == 0 {
		t.Fatal("catalogue has no values")
	}
}

// importedKey creates a KMS key of Origin EXTERNAL with the given key
// material and an alias for it.
func importedKey(t *testing.T, env *dynotest.Env, material []byte) (keyID, alias string) {
	t.Helper()
	ctx := context.Background()
	out, err := env.KMS.CreateKey(ctx, &kms.CreateKeyInput{Origin: kmstypes.OriginTypeExternal, Description: aws.String("dynoseal interop " + t.Name())})
	if err != nil {
		t.Fatalf("create EXTERNAL key: %v", err)
	}
	keyID = aws.ToString(out.KeyMetadata.KeyId)
	params, err := env.KMS.GetParametersForImport(ctx, &kms.GetParametersForImportInput{
		KeyId: aws.String(keyID), WrappingAlgorithm: kmstypes.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: kmstypes.WrappingKeySpecRsa2048,
	})
	if err != nil {
		t.Fatalf("GetParametersForImport: %v", err)
	}
	pub, err := x509.ParsePKIXPublicKey(params.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub.(*rsa.PublicKey), material, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.KMS.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
		KeyId: aws.String(keyID), ImportToken: params.ImportToken, EncryptedKeyMaterial: wrapped,
		ExpirationModel: kmstypes.ExpirationModelTypeKeyMaterialDoesNotExpire,
	}); err != nil {
		t.Fatalf("ImportKeyMaterial: %v", err)
	}
	alias = "alias/" + dynotest.UniqueName(t, "interop")
	if _, err := env.KMS.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: aws.String(keyID)}); err != nil {
		t.Fatalf("create alias: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = env.KMS.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(alias)})
		_, _ = env.KMS.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID), PendingWindowInDays: aws.Int32(7)})
	})
	return keyID, alias
}

// ---------------------------------------------------------------- tests

func TestInteropPythonSelftest(t *testing.T) {
	out := interopPython(t, nil, nil, "dynoseal_format.py", "selftest")
	if !bytes.Contains(out, []byte("selftest: ok")) {
		t.Fatalf("python selftest:\n%s", out)
	}
}

// The fixture's encrypted data keys are local-kms ciphertext blobs. local-kms
// decrypts a blob with the key named by Decrypt's KeyId (dynoseal always
// sends one), so a fresh key with the same imported key material opens them
// although its key ID differs from the one recorded in the fixture.
func TestInteropFixtureAsStored(t *testing.T) {
	env := dynotest.New(t)
	if env.Backend == "moto" {
		t.Skip("moto cannot recreate the fixture's KMS key: it implements neither GetParametersForImport nor " +
			"ImportKeyMaterial (moto 5.2.1 answers both with HTTP 500), draws every key's material from os.urandom " +
			"and its key ID from its own random generator, and its ciphertext blobs name the key ID and are " +
			"AES-GCM under that material; TestInteropFixtureRewrapped covers the fixture's version-1 values on moto")
	}
	data, err := os.ReadFile(interopFixture)
	if err != nil {
		t.Fatal(err)
	}
	doc := readInteropDoc(t, data)
	if doc.KMS == nil {
		t.Fatal("fixture records no KMS key")
	}
	checkCatalogue(t, doc)
	material, err := hex.DecodeString(doc.KMS.KeyMaterialHex)
	if err != nil || len(material) != 32 {
		t.Fatalf("fixture key material: %v (%d bytes)", err, len(material))
	}
	_, alias := importedKey(t, env, material)
	f := &fixture{env: env, alias: alias, reg: enc.NewRegistry()}
	tb := newInteropTables(t, env, doc, alias)
	tb.putAndOpen(t, f, doc)

	// An unchanged item is written back exactly as Python stored it.
	ctx := context.Background()
	it := doc.Items[0]
	got, err := tb.item.Get(ctx, repo.Key{Hash: interopPK})
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.item.Put(ctx, got); err != nil {
		t.Fatal(err)
	}
	raw := f.rawItem(t, tb.item.Table(), fromDynamoJSONMap(t, it.Key))
	for _, v := range it.Values {
		if s := storedAt(t, raw, v.Location); s != v.Stored {
			t.Errorf("%s: written back as %q, want the stored %q", v.Path, s, v.Stored)
		}
	}
}

// On a KMS that cannot import key material, the fixture's version-1 values
// are checked with their data keys encrypted again under a fresh key (by
// the Python side, KMS Encrypt with the same context): the version byte,
// nonce, ciphertext and tag stay as checked in. Version-2 values cannot be
// rewrapped (the encrypted data key is part of their GCM additional data);
// TestInteropPythonSealsGoOpens covers version 2 on every backend.
func TestInteropFixtureRewrapped(t *testing.T) {
	f := newFixture(t)
	fixturePath, err := filepath.Abs(interopFixture)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	orig := readInteropDoc(t, data)
	doc := readInteropDoc(t, interopPython(t, f.env, nil, "interop_fixture.py", "rewrap", fixturePath, f.keyID))
	checkCatalogue(t, doc)
	// Only the encrypted data key changed.
	origStored := map[string]string{}
	for _, it := range orig.Items {
		for _, v := range it.Values {
			origStored[it.Type+" "+locKey(v.Location)] = v.Stored
		}
	}
	n := 0
	for _, it := range doc.Items {
		for _, v := range it.Values {
			if v.Version != enc.Version1 {
				t.Fatalf("%s: rewrapped a version-%d value", v.Path, v.Version)
			}
			before, after := interopEnvelopeTail(t, origStored[it.Type+" "+locKey(v.Location)]), interopEnvelopeTail(t, v.Stored)
			if !bytes.Equal(before, after) {
				t.Errorf("%s: rewrapping changed the nonce, ciphertext or tag", v.Path)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no version-1 values in the fixture")
	}
	tb := newInteropTables(t, f.env, doc, f.alias)
	tb.putAndOpen(t, f, doc)
}

// interopEnvelopeTail is the version byte and everything after the
// encrypted data key: nonce, ciphertext, tag.
func interopEnvelopeTail(t *testing.T, stored string) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(stored, enc.Prefix))
	if err != nil || len(raw) < 3 {
		t.Fatalf("stored value %q: %v", stored, err)
	}
	n := int(raw[1])<<8 | int(raw[2])
	return append([]byte{raw[0]}, raw[3+n:]...)
}

type interopOpenRequest struct {
	ID        string            `json:"id"`
	KeyID     string            `json:"key_id"`
	Stored    string            `json:"stored"`
	Context   map[string]string `json:"context,omitempty"`
	Attribute string            `json:"attribute,omitempty"`
	Key       map[string]any    `json:"key,omitempty"`
	Expect    map[string]any    `json:"expect,omitempty"`
}

type interopOpenResult struct {
	ID        string `json:"id"`
	Version   byte   `json:"version"`
	Plaintext []byte `json:"plaintext_b64"`
	Match     *bool  `json:"match"`
	Error     string `json:"error"`
}

func TestInteropGoSealsPythonOpens(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	doc := readInteropDoc(t, interopPython(t, nil, nil, "interop_fixture.py", "catalogue"))
	checkCatalogue(t, doc)
	tb := newInteropTables(t, f.env, doc, f.alias)

	// The Go library seals every value of the catalogue.
	if err := tb.item.Put(ctx, interopWantItem()); err != nil {
		t.Fatal(err)
	}
	for _, seq := range interopSeqs {
		if err := tb.entry.Put(ctx, interopWantEntry(seq)); err != nil {
			t.Fatal(err)
		}
	}
	for _, at := range interopReadings {
		if err := tb.reading.Put(ctx, interopWantReading(at)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.blob.Put(ctx, interopWantBlob()); err != nil {
		t.Fatal(err)
	}

	keyNames := map[string][]string{"InteropItem": {"pk"}, "InteropEntry": {"account", "seq"}, "InteropReading": {"sensor", "at"}, "InteropBlob": {"id"}}
	var reqs []interopOpenRequest
	wants := map[string]interopValue{}
	negative := map[string]string{}
	for i, it := range doc.Items {
		raw := f.rawItem(t, tb.table(it.Type), fromDynamoJSONMap(t, it.Key))
		key := keyToDynamoJSON(t, raw, keyNames[it.Type]...)
		for j, v := range it.Values {
			stored := storedAt(t, raw, v.Location)
			if ver, err := enc.EnvelopeVersion(stored); err != nil || ver != v.Version {
				t.Errorf("%s: Go sealed envelope version %d (%v), want %d", v.Path, ver, err, v.Version)
			}
			id := fmt.Sprintf("%d/%d", i, j)
			req := interopOpenRequest{ID: id, KeyID: f.alias, Stored: stored, Context: v.Context,
				Expect: map[string]any{"kind": v.Kind, "value": v.Value}}
			if v.Version == enc.Version2 {
				req.Attribute, req.Key = v.Path, key
			}
			reqs = append(reqs, req)
			wants[id] = v

			// What must not open: another context; for version 2 another
			// attribute or another item.
			bad := req
			bad.Expect = nil
			bad.ID, bad.Context = id+" other context", map[string]string{"purpose": "other"}
			reqs, negative[bad.ID] = append(reqs, bad), v.Path
			if v.Version == enc.Version2 {
				bad = req
				bad.Expect = nil
				bad.ID, bad.Attribute = id+" other attribute", v.Path+"x"
				reqs, negative[bad.ID] = append(reqs, bad), v.Path
				bad.ID, bad.Attribute = id+" other item", v.Path
				bad.Key = map[string]any{}
				for k, a := range key {
					bad.Key[k] = a
				}
				switch it.Type {
				case "InteropItem":
					bad.Key["pk"] = map[string]any{"S": interopPK + "0"}
				case "InteropEntry":
					bad.Key["seq"] = map[string]any{"N": "43"}
				case "InteropReading":
					bad.Key["at"] = map[string]any{"N": "0.01"}
				case "InteropBlob":
					bad.Key["id"] = map[string]any{"S": string(interopBlobID)}
				}
				reqs, negative[bad.ID] = append(reqs, bad), v.Path
			}
		}
	}

	out := interopPython(t, f.env, map[string]any{"requests": reqs}, "dynoseal_format.py", "open")
	var res struct {
		Results []interopOpenResult `json:"results"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("python open: %v\n%s", err, out)
	}
	if len(res.Results) != len(reqs) {
		t.Fatalf("python open gave %d results for %d requests", len(res.Results), len(reqs))
	}
	opened, refused := 0, 0
	for _, r := range res.Results {
		if path, ok := negative[r.ID]; ok {
			if r.Error == "" {
				t.Errorf("%s (%s): Python opened it", path, r.ID)
			} else {
				refused++
			}
			continue
		}
		v := wants[r.ID]
		switch {
		case r.Error != "":
			t.Errorf("%s (v%d, sealed by Go): Python could not open it: %s", v.Path, v.Version, r.Error)
		case r.Version != v.Version:
			t.Errorf("%s: envelope version %d, want %d", v.Path, r.Version, v.Version)
		case r.Match == nil || !*r.Match:
			t.Errorf("%s (v%d, sealed by Go): Python opened %q, which is not %s", v.Path, v.Version, r.Plaintext, v.Value)
		default:
			opened++
		}
		// Strings and bytes are sealed as they are; the JSON-encoded values
		// in their documented form.
		want := v.Plaintext
		if e, ok := interopExact[locKey(v.Location)]; ok {
			want = []byte(e)
		} else if v.Kind == "json" {
			continue
		}
		if r.Error == "" && !bytes.Equal(r.Plaintext, want) {
			t.Errorf("%s: Go sealed the plaintext bytes %q, want %q", v.Path, r.Plaintext, want)
		}
	}
	t.Logf("Python opened %d values sealed by Go and refused %d under a wrong context or binding", opened, refused)
}

func TestInteropPythonSealsGoOpens(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	doc := readInteropDoc(t, interopPython(t, f.env, nil, "interop_fixture.py", "seal", f.alias))
	checkCatalogue(t, doc)
	tb := newInteropTables(t, f.env, doc, f.alias)
	tb.putAndOpen(t, f, doc)

	// Python's values copied into other items: version 1 opens there (it is
	// bound to nothing); version 2 does not, nor does a value sealed under
	// another tenant's context.
	stored := map[string]string{}
	for _, v := range doc.Items[0].Values {
		stored[locKey(v.Location)] = v.Stored
	}
	copies := []struct {
		pk, tenant, attr string
		opens            bool
	}{
		{"INTEROP#copy-v1", interopTenant, "ascii", true},
		{"INTEROP#copy-v2", interopTenant, "v2", false},
		{"INTEROP#copy-tenant", "globex", "by_tenant", false},
	}
	for _, c := range copies {
		f.rawPut(t, tb.item.Table(), map[string]types.AttributeValue{"pk": s(c.pk), "tenant": s(c.tenant), c.attr: s(stored[c.attr])})
		got, err := tb.item.Get(ctx, repo.Key{Hash: c.pk})
		if err == nil {
			_, err = interopLookup(got, []any{c.attr})
		}
		switch {
		case c.opens && err != nil:
			t.Errorf("%s copied into %s: %v, want it to open", c.attr, c.pk, err)
		case !c.opens && !errors.Is(err, enc.ErrInvalidCiphertext):
			t.Errorf("%s copied into %s (tenant %s): %v, want an error matching enc.ErrInvalidCiphertext", c.attr, c.pk, c.tenant, err)
		}
	}
}

// Damaged copies of values Python sealed (made by the Python side from the
// rules of docs/format.md) are refused by both readers alike: a broken
// string or envelope as malformed, before any KMS call; a well-formed
// envelope that fails GCM as invalid.
func TestInteropDamagedValues(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	doc := readInteropDoc(t, interopPython(t, f.env, nil, "interop_fixture.py", "seal", f.alias))
	tb := newInteropTables(t, f.env, doc, f.alias)

	// Version-1 strings of several lengths, so that some need base64 padding.
	attrs := []string{"ascii", "utf8", "empty", "ctx", "by_tenant", "long"}
	var sources []string
	contexts := map[string]map[string]string{}
	for _, v := range doc.Items[0].Values {
		if slices.Contains(attrs, locKey(v.Location)) {
			sources = append(sources, v.Stored)
			contexts[v.Stored] = v.Context
		}
	}
	if len(sources) != len(attrs) {
		t.Fatalf("found %d of the values %v", len(sources), attrs)
	}
	var tampered struct {
		Variants []struct {
			Name   string `json:"name"`
			Stored string `json:"stored"`
			Expect string `json:"expect"`
			Source int    `json:"source"`
		} `json:"variants"`
	}
	if err := json.Unmarshal(interopPython(t, nil, map[string]any{"stored": sources}, "interop_fixture.py", "tamper"), &tampered); err != nil {
		t.Fatal(err)
	}

	// Each variant goes into an item of its own; a variant relabelled as
	// version 2 is opened with the binding it has there.
	pkOf := func(i int) string { return fmt.Sprintf("DAMAGED#%d", i) }
	var reqs []interopOpenRequest
	for i, v := range tampered.Variants {
		reqs = append(reqs, interopOpenRequest{ID: fmt.Sprint(i), KeyID: f.alias, Stored: v.Stored, Context: contexts[sources[v.Source]],
			Attribute: attrs[v.Source], Key: map[string]any{"pk": map[string]any{"S": pkOf(i)}}})
	}
	var res struct {
		Results []interopOpenResult `json:"results"`
	}
	if err := json.Unmarshal(interopPython(t, f.env, map[string]any{"requests": reqs}, "dynoseal_format.py", "open"), &res); err != nil {
		t.Fatal(err)
	}

	names := map[string]int{}
	for i, v := range tampered.Variants {
		attr := attrs[v.Source]
		names[v.Name]++
		pyPrefix, sentinel := "OpenError", enc.ErrInvalidCiphertext
		if v.Expect == "malformed" {
			pyPrefix, sentinel = "FormatError", enc.ErrMalformed
		}
		if r := res.Results[i]; !strings.HasPrefix(r.Error, pyPrefix) {
			t.Errorf("%s, %s: Python says %q, want a %s", attr, v.Name, r.Error, pyPrefix)
		}

		pk := pkOf(i)
		f.rawPut(t, tb.item.Table(), map[string]types.AttributeValue{"pk": s(pk), "tenant": s(interopTenant), attr: s(v.Stored)})
		before := tb.item.Encryptor().Stats().DecryptCalls
		got, err := tb.item.Get(ctx, repo.Key{Hash: pk})
		if err == nil {
			_, err = interopLookup(got, []any{attr})
		}
		calls := tb.item.Encryptor().Stats().DecryptCalls - before
		switch {
		case !errors.Is(err, sentinel):
			t.Errorf("%s, %s: Go says %v, want an error matching %v", attr, v.Name, err, sentinel)
		case v.Expect == "malformed" && calls != 0:
			t.Errorf("%s, %s: Go made %d KMS Decrypt calls for a malformed value", attr, v.Name, calls)
		}
	}
	for _, want := range []string{"padding bits not zero", "padding left out", "line break", "unknown version 3", "data key length 0", "ciphertext bit flipped", "tag bit flipped", "relabelled as version 2"} {
		if names[want] == 0 {
			t.Errorf("no %q variant among %v", want, names)
		}
	}
	t.Logf("both readers refused %d damaged values: %v", len(tampered.Variants), names)
}
