package repo_test

// Benchmarks of the library against the AWS SDK used directly, for
// bin/benchratio (tests/cmd/benchratio), which pairs each `raw` or `floor`
// sub-benchmark with its `dynoseal` sibling and prints their ratio.
//
// BenchmarkVsRaw: both sides send the same DynamoDB requests through a
// *dynamodb.Client over the in-process fake transport (internal/fakedynamo),
// so the SDK's serialising, signing, checksum and deserialising are in both,
// and only the network is left out. The fake's own work (reading the request
// JSON, writing the response) is in both too. raw marshals and unmarshals
// with attributevalue and calls the SDK; dynoseal calls the repository.
//
//   - plain: vsPlain, 8 attributes, no encrypted field.
//   - enc3: vsSealed, the same plus 3 field.Encrypted[string] under one spec
//     (a private registry, an Encryptor over the in-memory enctest provider,
//     no cache); raw stores vsSealedRaw, the same shape with plain strings.
//     dynoseal's KMS work (enctest's) is counted: a Put makes one
//     GenerateDataKey, a Get one Decrypt, a Query of items written by one
//     BatchPut one Decrypt, a BatchPut one GenerateDataKey.
//
// Operations: Put of one item; Get of one item; Query1000, a query of one
// partition of 1,000 items read to the end (one request: the page stays
// under 1 MB) into a []T; BatchPut1000, 1,000 items in 40 BatchWriteItem
// requests of 25, sent one after the other on both sides (dynoseal with
// repo.WithBatchConcurrency(1), so neither side gains by overlapping
// requests on the second core).

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/internal/fakedynamo"
	"github.com/dynoseal/dynoseal/repo"
)

// vsPlain is an item without encrypted fields.
type vsPlain struct {
	PK      string   `dynamodbav:"pk" repo:"hash"`
	SK      int      `dynamodbav:"sk" repo:"range"`
	Email   string   `dynamodbav:"email"`
	Name    string   `dynamodbav:"name"`
	Age     int      `dynamodbav:"age"`
	Balance float64  `dynamodbav:"balance"`
	Active  bool     `dynamodbav:"active"`
	Tags    []string `dynamodbav:"tags"`
}

// vsSealed is vsPlain with three encrypted fields.
type vsSealed struct {
	PK      string                  `dynamodbav:"pk" repo:"hash"`
	SK      int                     `dynamodbav:"sk" repo:"range"`
	Email   string                  `dynamodbav:"email"`
	Name    string                  `dynamodbav:"name"`
	Age     int                     `dynamodbav:"age"`
	Balance float64                 `dynamodbav:"balance"`
	Active  bool                    `dynamodbav:"active"`
	Tags    []string                `dynamodbav:"tags"`
	SSN     field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
	Phone   field.Encrypted[string] `dynamodbav:"phone" enc:"pii"`
	Card    field.Encrypted[string] `dynamodbav:"card" enc:"pii"`
}

// vsSealedRaw is vsSealed's shape with plain strings, for the raw SDK.
type vsSealedRaw struct {
	PK      string   `dynamodbav:"pk"`
	SK      int      `dynamodbav:"sk"`
	Email   string   `dynamodbav:"email"`
	Name    string   `dynamodbav:"name"`
	Age     int      `dynamodbav:"age"`
	Balance float64  `dynamodbav:"balance"`
	Active  bool     `dynamodbav:"active"`
	Tags    []string `dynamodbav:"tags"`
	SSN     string   `dynamodbav:"ssn"`
	Phone   string   `dynamodbav:"phone"`
	Card    string   `dynamodbav:"card"`
}

const (
	vsSSN   = "123-45-6789"
	vsPhone = "+44 20 7946 0958"
	vsCard  = "4111 1111 1111 1111"
)

func vsPlainItem(pk string, i int) vsPlain {
	return vsPlain{PK: pk, SK: i, Email: fmt.Sprintf("user%d@example.com", i), Name: "Jane Q. Example",
		Age: 20 + i%50, Balance: float64(i) * 1.25, Active: i%2 == 0, Tags: []string{"gold", "eu-west"}}
}

func vsSealedRawItem(pk string, i int) vsSealedRaw {
	p := vsPlainItem(pk, i)
	return vsSealedRaw{PK: p.PK, SK: p.SK, Email: p.Email, Name: p.Name, Age: p.Age, Balance: p.Balance,
		Active: p.Active, Tags: p.Tags, SSN: vsSSN, Phone: vsPhone, Card: vsCard}
}

func vsSealedItem(pk string, i int) vsSealed {
	p := vsPlainItem(pk, i)
	return vsSealed{PK: p.PK, SK: p.SK, Email: p.Email, Name: p.Name, Age: p.Age, Balance: p.Balance,
		Active: p.Active, Tags: p.Tags, SSN: field.NewEncrypted(vsSSN), Phone: field.NewEncrypted(vsPhone),
		Card: field.NewEncrypted(vsCard)}
}

func vsItems[T any](n int, mk func(string, int) T) []T {
	items := make([]T, n)
	for i := range items {
		items[i] = mk("P", i)
	}
	return items
}

// vsEnv is one fake DynamoDB with a table "bench" (pk S, sk N) and a client.
type vsEnv struct {
	fake *fakedynamo.Transport
	db   *dynamodb.Client
	keys *enctest.Provider
}

func newVsEnv(b *testing.B) *vsEnv {
	b.Helper()
	f := fakedynamo.New()
	if err := f.AddTable("bench", fakedynamo.KeyAttribute{Name: "pk", Type: "S"}, fakedynamo.KeyAttribute{Name: "sk", Type: "N"}); err != nil {
		b.Fatal(err)
	}
	return &vsEnv{fake: f, db: f.Client(), keys: enctest.New()}
}

func vsRepo[T any](b *testing.B, e *vsEnv) *repo.Repo[T] {
	b.Helper()
	reg := enc.NewRegistry()
	if err := reg.Register("pii", enc.Spec{KeyID: "alias/bench"}); err != nil {
		b.Fatal(err)
	}
	r, err := repo.New[T]("bench", repo.WithClient(e.db), repo.WithRegistry(reg),
		repo.WithEncryptor(enc.New(e.keys)), repo.WithBatchConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// vsMeter measures a loop: besides what the testing package reports, the
// process's CPU time (cpu-ns/op, see cpuMeter), the fake's time serving
// requests (fake-ns/op, which tests/cmd/benchratio subtracts from both
// sides for its "client only" ratio), the requests of the operation
// (requests/op, the same on both sides of a pair) and, when there are any,
// the KMS calls (generate/op, decrypt/op; see the top of this file).
type vsMeter struct {
	e         *vsEnv
	op        string
	cpu       cpuMeter
	busy      time.Duration
	requests  int
	gen, decr int64
}

// start snapshots the counters; call it after the setup, right before the loop.
func (e *vsEnv) start(b *testing.B, op string) vsMeter {
	return vsMeter{e: e, op: op, busy: e.fake.Busy(), requests: e.fake.Requests(op),
		gen: e.keys.Generates.Load(), decr: e.keys.Decrypts.Load(), cpu: startCPU(b)}
}

func (m vsMeter) stop(b *testing.B) {
	m.cpu.report(b)
	n := float64(b.N)
	e := m.e
	b.ReportMetric(float64((e.fake.Busy()-m.busy).Nanoseconds())/n, "fake-ns/op")
	b.ReportMetric(float64(e.fake.Requests(m.op)-m.requests)/n, "requests/op")
	if g, d := e.keys.Generates.Load()-m.gen, e.keys.Decrypts.Load()-m.decr; g+d > 0 {
		b.ReportMetric(float64(g)/n, "generate/op")
		b.ReportMetric(float64(d)/n, "decrypt/op")
	}
}

// cpuMeter measures the process's CPU time over a benchmark's loop, so a
// pair can also be compared by CPU time (cpu-ns/op), which other load on the
// machine disturbs less than wall time. It includes the garbage collector's
// work on other threads, and the fake DynamoDB's.
type cpuMeter struct {
	start time.Duration
	ok    bool
}

// startCPU turns on allocation reports and starts measuring; call it after
// the setup, right before the loop.
func startCPU(b *testing.B) cpuMeter {
	b.ReportAllocs()
	t, ok := processCPU()
	return cpuMeter{t, ok}
}

func (m cpuMeter) report(b *testing.B) {
	if t, ok := processCPU(); ok && m.ok && b.N > 0 {
		b.ReportMetric(float64((t-m.start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// The raw SDK's side of each operation, for any item type T.

func rawPut[T any](b *testing.B, e *vsEnv, item T) {
	ctx := context.Background()
	m := e.start(b, "PutItem")
	for b.Loop() {
		av, err := attributevalue.MarshalMap(item)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("bench"), Item: av}); err != nil {
			b.Fatal(err)
		}
	}
	m.stop(b)
}

func rawGet[T any](b *testing.B, e *vsEnv, item T) {
	ctx := context.Background()
	av, err := attributevalue.MarshalMap(item)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("bench"), Item: av}); err != nil {
		b.Fatal(err)
	}
	m := e.start(b, "GetItem")
	for b.Loop() {
		out, err := e.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("bench"), ConsistentRead: aws.Bool(false),
			Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "P"}, "sk": &types.AttributeValueMemberN{Value: "1"}}})
		if err != nil || out.Item == nil {
			b.Fatal(out, err)
		}
		var got T
		if err := attributevalue.UnmarshalMap(out.Item, &got); err != nil {
			b.Fatal(err)
		}
	}
	m.stop(b)
}

func rawBatchWrite[T any](b *testing.B, e *vsEnv, items []T) {
	ctx := context.Background()
	avs := make([]map[string]types.AttributeValue, len(items))
	for i := range items {
		av, err := attributevalue.MarshalMap(items[i])
		if err != nil {
			b.Fatal(err)
		}
		avs[i] = av
	}
	for start := 0; start < len(avs); start += 25 {
		reqs := make([]types.WriteRequest, 0, 25)
		for _, av := range avs[start:min(start+25, len(avs))] {
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: av}})
		}
		pending := map[string][]types.WriteRequest{"bench": reqs}
		for len(pending) > 0 {
			out, err := e.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				b.Fatal(err)
			}
			pending = out.UnprocessedItems
		}
	}
}

func rawBatchPut[T any](b *testing.B, e *vsEnv, items []T) {
	m := e.start(b, "BatchWriteItem")
	for b.Loop() {
		rawBatchWrite(b, e, items)
	}
	m.stop(b)
}

func rawQuery[T any](b *testing.B, e *vsEnv, items []T) {
	ctx := context.Background()
	rawBatchWrite(b, e, items)
	m := e.start(b, "Query")
	for b.Loop() {
		kc, err := expression.NewBuilder().WithKeyCondition(expression.Key("pk").Equal(expression.Value("P"))).Build()
		if err != nil {
			b.Fatal(err)
		}
		in := &dynamodb.QueryInput{TableName: aws.String("bench"), KeyConditionExpression: kc.KeyCondition(),
			ExpressionAttributeNames: kc.Names(), ExpressionAttributeValues: kc.Values(), ScanIndexForward: aws.Bool(true)}
		got := make([]T, 0, len(items))
		p := dynamodb.NewQueryPaginator(e.db, in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				b.Fatal(err)
			}
			page := make([]T, len(out.Items))
			if err := attributevalue.UnmarshalListOfMaps(out.Items, &page); err != nil {
				b.Fatal(err)
			}
			got = append(got, page...)
		}
		if len(got) != len(items) {
			b.Fatalf("%d items", len(got))
		}
	}
	m.stop(b)
}

// The library's side.

func dynoPut[T any](b *testing.B, e *vsEnv, item T) {
	ctx := context.Background()
	r := vsRepo[T](b, e)
	m := e.start(b, "PutItem")
	for b.Loop() {
		if err := r.Put(ctx, item); err != nil {
			b.Fatal(err)
		}
	}
	m.stop(b)
}

func dynoGet[T any](b *testing.B, e *vsEnv, item T) {
	ctx := context.Background()
	r := vsRepo[T](b, e)
	if err := r.Put(ctx, item); err != nil {
		b.Fatal(err)
	}
	m := e.start(b, "GetItem")
	for b.Loop() {
		if _, err := r.Get(ctx, repo.Key{Hash: "P", Range: 1}); err != nil {
			b.Fatal(err)
		}
	}
	m.stop(b)
}

func dynoBatchPut[T any](b *testing.B, e *vsEnv, items []T) {
	ctx := context.Background()
	r := vsRepo[T](b, e)
	m := e.start(b, "BatchWriteItem")
	for b.Loop() {
		if err := r.BatchPut(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
	m.stop(b)
}

func dynoQuery[T any](b *testing.B, e *vsEnv, items []T) {
	ctx := context.Background()
	r := vsRepo[T](b, e)
	if err := r.BatchPut(ctx, items); err != nil {
		b.Fatal(err)
	}
	m := e.start(b, "Query")
	for b.Loop() {
		got := make([]T, 0, len(items))
		for it, err := range r.Query(ctx, expression.Key("pk").Equal(expression.Value("P"))) {
			if err != nil {
				b.Fatal(err)
			}
			got = append(got, it)
		}
		if len(got) != len(items) {
			b.Fatalf("%d items", len(got))
		}
	}
	m.stop(b)
}

func BenchmarkVsRaw(b *testing.B) {
	const n = 1000
	pair := func(name string, raw, dyno func(*testing.B, *vsEnv)) {
		b.Run(name, func(b *testing.B) {
			b.Run("raw", func(b *testing.B) { raw(b, newVsEnv(b)) })
			b.Run("dynoseal", func(b *testing.B) { dyno(b, newVsEnv(b)) })
		})
	}
	plain, sealedRaw, sealed := vsPlainItem("P", 1), vsSealedRawItem("P", 1), vsSealedItem("P", 1)
	plains, sealedRaws, sealeds := vsItems(n, vsPlainItem), vsItems(n, vsSealedRawItem), vsItems(n, vsSealedItem)

	pair("Put/plain",
		func(b *testing.B, e *vsEnv) { rawPut(b, e, plain) },
		func(b *testing.B, e *vsEnv) { dynoPut(b, e, plain) })
	pair("Get/plain",
		func(b *testing.B, e *vsEnv) { rawGet(b, e, plain) },
		func(b *testing.B, e *vsEnv) { dynoGet(b, e, plain) })
	pair("Query1000/plain",
		func(b *testing.B, e *vsEnv) { rawQuery(b, e, plains) },
		func(b *testing.B, e *vsEnv) { dynoQuery(b, e, plains) })
	pair("BatchPut1000/plain",
		func(b *testing.B, e *vsEnv) { rawBatchPut(b, e, plains) },
		func(b *testing.B, e *vsEnv) { dynoBatchPut(b, e, plains) })

	pair("Put/enc3",
		func(b *testing.B, e *vsEnv) { rawPut(b, e, sealedRaw) },
		func(b *testing.B, e *vsEnv) { dynoPut(b, e, sealed) })
	pair("Get/enc3",
		func(b *testing.B, e *vsEnv) { rawGet(b, e, sealedRaw) },
		func(b *testing.B, e *vsEnv) { dynoGet(b, e, sealed) })
	pair("Query1000/enc3",
		func(b *testing.B, e *vsEnv) { rawQuery(b, e, sealedRaws) },
		func(b *testing.B, e *vsEnv) { dynoQuery(b, e, sealeds) })
	pair("BatchPut1000/enc3",
		func(b *testing.B, e *vsEnv) { rawBatchPut(b, e, sealedRaws) },
		func(b *testing.B, e *vsEnv) { dynoBatchPut(b, e, sealeds) })

	// The same, but raw stores strings as long as the sealed values, so
	// both sides move the same bytes through the SDK and the fake: the
	// ratio is the library's own work (sealing or opening included), with
	// the cost of the larger payload that encryption brings taken out. No
	// target: it explains the enc3 ratios.
	wires := vsItems(n, vsWireItem)
	pair("Query1000/enc3wire",
		func(b *testing.B, e *vsEnv) { rawQuery(b, e, wires) },
		func(b *testing.B, e *vsEnv) { dynoQuery(b, e, sealeds) })
	pair("BatchPut1000/enc3wire",
		func(b *testing.B, e *vsEnv) { rawBatchPut(b, e, wires) },
		func(b *testing.B, e *vsEnv) { dynoBatchPut(b, e, sealeds) })
}

// vsWireItem is vsSealedRawItem with each encrypted field's plaintext
// replaced by a string as long as its sealed form (version 1, enctest's
// 60-byte encrypted data key).
func vsWireItem(pk string, i int) vsSealedRaw {
	it := vsSealedRawItem(pk, i)
	sealedLen := func(plain string) string {
		n := len(enc.Prefix) + base64.StdEncoding.EncodedLen(1+2+60+12+len(plain)+16)
		return enc.Prefix + strings.Repeat("A", n-len(enc.Prefix))
	}
	it.SSN, it.Phone, it.Card = sealedLen(it.SSN), sealedLen(it.Phone), sealedLen(it.Card)
	return it
}

// vsHundred holds the values BenchmarkSealField seals.
type vsHundred struct {
	PK     string                    `dynamodbav:"pk" repo:"hash"`
	Values []field.Encrypted[string] `dynamodbav:"values" enc:"pii"`
}

const (
	sealFieldValues    = 100
	sealFieldPlaintext = "0123456789abcdef" // 16 bytes
)

// BenchmarkSealField compares sealing and marshalling one encrypted value
// with the least work that makes the same stored string. One op handles
// sealFieldValues values; ns/value is ns/op divided by that count.
//
//   - floor: for each value, a fresh 12-byte nonce from crypto/rand,
//     AES-256-GCM Seal with a cipher.AEAD made once, the version-1 envelope
//     (0x01, big-endian uint16 key length, encrypted data key, nonce,
//     ciphertext and tag) and base64.StdEncoding behind "ENC:", built in one
//     buffer and returned as a string. The plaintext bytes and the encrypted
//     data key (as long as dynoseal's here) are ready before the loop.
//   - dynoseal: repo.Marshal of a vsHundred item holding sealFieldValues
//     new field.Encrypted[string] values, which seals all of them under one
//     data key (one GenerateDataKey of the in-memory enctest provider per op)
//     and marshals the item into attribute values: the key and a list of
//     sealFieldValues S values.
func BenchmarkSealField(b *testing.B) {
	ctx := context.Background()
	reg := enc.NewRegistry()
	if err := reg.Register("pii", enc.Spec{KeyID: "alias/bench"}); err != nil {
		b.Fatal(err)
	}
	keys := enctest.New()
	r, err := repo.New[vsHundred]("bench", repo.WithRegistry(reg), repo.WithEncryptor(enc.New(keys)))
	if err != nil {
		b.Fatal(err)
	}
	item := vsHundred{PK: "P", Values: make([]field.Encrypted[string], sealFieldValues)}
	for i := range item.Values {
		item.Values[i] = field.NewEncrypted(sealFieldPlaintext)
	}
	// The floor's encrypted data key is as long as the one dynoseal stores.
	sample, err := r.Marshal(ctx, item)
	if err != nil {
		b.Fatal(err)
	}
	keyLen := sealedKeyLen(b, sample["values"].(*types.AttributeValueMemberL).Value[0].(*types.AttributeValueMemberS).Value)

	perValue := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*sealFieldValues), "ns/value")
	}
	b.Run("floor", func(b *testing.B) {
		dataKey := make([]byte, 32)
		encryptedKey := make([]byte, keyLen)
		_, _ = rand.Read(dataKey)
		_, _ = rand.Read(encryptedKey)
		block, err := aes.NewCipher(dataKey)
		if err != nil {
			b.Fatal(err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			b.Fatal(err)
		}
		plaintext := []byte(sealFieldPlaintext)
		out := make([]string, sealFieldValues)
		cpu := startCPU(b)
		for b.Loop() {
			for i := range out {
				out[i] = floorSeal(aead, encryptedKey, plaintext)
			}
		}
		cpu.report(b)
		perValue(b)
		if !strings.HasPrefix(out[0], enc.Prefix) {
			b.Fatal(out[0])
		}
	})
	b.Run("dynoseal", func(b *testing.B) {
		before := keys.Generates.Load()
		cpu := startCPU(b)
		for b.Loop() {
			if _, err := r.Marshal(ctx, item); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b)
		perValue(b)
		b.ReportMetric(float64(keys.Generates.Load()-before)/float64(b.N), "generate/op")
	})
}

// floorSeal makes one version-1 stored value with one buffer for the
// envelope and its encoding.
func floorSeal(aead cipher.AEAD, encryptedKey, plaintext []byte) string {
	const prefix, nonceLen = "ENC:", 12
	rawLen := 1 + 2 + len(encryptedKey) + nonceLen + len(plaintext) + aead.Overhead()
	textLen := len(prefix) + base64.StdEncoding.EncodedLen(rawLen)
	buf := make([]byte, textLen+rawLen)
	raw := append(buf[textLen:textLen], 1)
	raw = binary.BigEndian.AppendUint16(raw, uint16(len(encryptedKey)))
	raw = append(raw, encryptedKey...)
	nonce := raw[len(raw) : len(raw)+nonceLen]
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	raw = aead.Seal(raw[:len(raw)+nonceLen], nonce, plaintext, nil)
	copy(buf, prefix)
	base64.StdEncoding.Encode(buf[len(prefix):textLen], raw)
	return string(buf[:textLen])
}

// sealedKeyLen reads the encrypted data key's length from a stored value.
func sealedKeyLen(b *testing.B, stored string) int {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(stored, enc.Prefix))
	if err != nil || len(raw) < 3 || raw[0] != 1 {
		b.Fatalf("not a version-1 value: %q %v", stored, err)
	}
	return int(binary.BigEndian.Uint16(raw[1:3]))
}
