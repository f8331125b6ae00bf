package repo_test

import (
	"context"
	"fmt"
	"iter"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/internal/fakedynamo"
	"github.com/dynoseal/dynoseal/repo"
)

// benchCustomer can be found by its email two ways: through the beacon of
// the sealed Email (by-email), and through PlainEmail, the same address in
// the clear with the same tenant prefix (by-plain), which is what a table
// without encryption would index.
type benchCustomer struct {
	Tenant     string                  `dynamodbav:"tenant" repo:"hash"`
	ID         int                     `dynamodbav:"id" repo:"range"`
	Name       string                  `dynamodbav:"name"`
	PlainEmail string                  `dynamodbav:"plain_email" repo:"gsi:by-plain:hash"`
	Email      field.Encrypted[string] `dynamodbav:"email" enc:"pii" beacon:"email,prefix=tenant" repo:"gsi:by-email:hash"`
	SSN        field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
}

const benchCustomers = 10000

func benchEmail(i int) string { return fmt.Sprintf("user%05d@example.com", i) }

// BenchmarkBeaconLookup finds one customer among 10,000 of a tenant by
// email: floor is a Query of the plaintext attribute's index, dynoseal a
// Lookup through the beacon's index. Both go through the same in-process
// DynamoDB (internal/fakedynamo) and open the same item's two encrypted
// fields, with a cache of data and beacon keys as a service would run;
// Lookup also computes the probe's beacon and opens and drops the
// candidates that share it by chance, as often as 10,000/2^bits per lookup.
// tests/cmd/benchratio pairs the two sides.
func BenchmarkBeaconLookup(b *testing.B) {
	for _, bits := range []int{16, 10} {
		e, r := newBeaconBench(b, bits, benchCustomers)
		ctx := context.Background()
		b.Run(fmt.Sprintf("bits%d/floor", bits), func(b *testing.B) {
			m := e.start(b, "Query")
			i := 0
			for b.Loop() {
				i = (i + 7919) % benchCustomers
				expectOne(b, i, r.Query(ctx, expression.Key("plain_email").Equal(expression.Value("acme#"+benchEmail(i))), repo.Index("by-plain")))
			}
			m.stop(b)
		})
		b.Run(fmt.Sprintf("bits%d/dynoseal", bits), func(b *testing.B) {
			m := e.start(b, "Query")
			i := 0
			for b.Loop() {
				i = (i + 7919) % benchCustomers
				expectOne(b, i, r.Lookup(ctx, "email", benchCustomer{Tenant: "acme", Email: field.NewEncrypted(benchEmail(i))}))
			}
			m.stop(b)
			b.ReportMetric(float64(e.keys.Macs.Load())/float64(b.N), "mac/op")
		})
	}
}

// expectOne reads seq, which must yield customer want alone.
func expectOne(b *testing.B, want int, seq iter.Seq2[benchCustomer, error]) {
	n := 0
	for c, err := range seq {
		if err != nil || c.ID != want {
			b.Fatal(c.ID, err)
		}
		n++
	}
	if n != 1 {
		b.Fatalf("%d items", n)
	}
}

// newBeaconBench makes a table of benchCustomer holding n customers of
// tenant acme, with a beacon of the given length.
func newBeaconBench(b *testing.B, bits, n int) (*vsEnv, *repo.Repo[benchCustomer]) {
	b.Helper()
	e := &vsEnv{fake: fakedynamo.New(), keys: enctest.New()}
	e.db = e.fake.Client()
	r, err := repo.New[benchCustomer]("customers", repo.WithClient(e.db), repo.WithRegistry(beaconBenchRegistry(bits)),
		repo.WithEncryptor(enc.New(e.keys, enc.WithCache(enc.CacheLimits{}))), repo.WithBatchConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := r.CreateTable(ctx); err != nil {
		b.Fatal(err)
	}
	if n > 0 {
		if err := r.BatchPut(ctx, benchCustomerItems(n)); err != nil {
			b.Fatal(err)
		}
	}
	return e, r
}

func beaconBenchRegistry(bits int) *enc.Registry {
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/bench", ContextFrom: map[string]string{"tenant": "tenant"}})
	reg.MustRegisterBeacon("email", enc.Beacon{KeyID: "alias/beacons", Bits: bits, FoldCase: true})
	return reg
}

func benchCustomerItems(n int) []benchCustomer {
	items := make([]benchCustomer, n)
	for i := range items {
		items[i] = benchCustomer{Tenant: "acme", ID: i, Name: "Jane Q. Example", PlainEmail: "acme#" + benchEmail(i),
			Email: field.NewEncrypted(benchEmail(i)), SSN: field.NewEncrypted(vsSSN)}
	}
	return items
}

// unbeaconedCustomer is benchCustomer without the beacon.
type unbeaconedCustomer struct {
	Tenant     string                  `dynamodbav:"tenant" repo:"hash"`
	ID         int                     `dynamodbav:"id" repo:"range"`
	Name       string                  `dynamodbav:"name"`
	PlainEmail string                  `dynamodbav:"plain_email"`
	Email      field.Encrypted[string] `dynamodbav:"email" enc:"pii"`
	SSN        field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
}

// BenchmarkBeaconBatchPut writes 1,000 customers with one BatchPut: floor
// without a beacon, dynoseal with one on every item (a beacon-key cache
// on, as in BenchmarkBeaconLookup). The difference is the beacons' cost.
func BenchmarkBeaconBatchPut(b *testing.B) {
	const n = 1000
	b.Run("floor", func(b *testing.B) {
		e, r := newBeaconBench(b, 16, 0)
		plain, err := repo.New[unbeaconedCustomer]("customers", repo.WithClient(e.db), repo.WithRegistry(beaconBenchRegistry(16)),
			repo.WithEncryptor(r.Encryptor()), repo.WithBatchConcurrency(1))
		if err != nil {
			b.Fatal(err)
		}
		items := make([]unbeaconedCustomer, n)
		for i := range items {
			items[i] = unbeaconedCustomer{Tenant: "acme", ID: i, Name: "Jane Q. Example", PlainEmail: "acme#" + benchEmail(i),
				Email: field.NewEncrypted(benchEmail(i)), SSN: field.NewEncrypted(vsSSN)}
		}
		batchPutLoop(b, e, plain, items)
	})
	b.Run("dynoseal", func(b *testing.B) {
		e, r := newBeaconBench(b, 16, 0)
		batchPutLoop(b, e, r, benchCustomerItems(n))
	})
}

func batchPutLoop[T any](b *testing.B, e *vsEnv, r *repo.Repo[T], items []T) {
	ctx := context.Background()
	m := e.start(b, "BatchWriteItem")
	for b.Loop() {
		if err := r.BatchPut(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
	m.stop(b)
}
