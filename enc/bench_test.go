package enc_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
)

// slowKeys adds a fixed round trip to every KMS call, to show what the
// calls cost a real service (KMS in-region answers in a few milliseconds).
type slowKeys struct {
	enc.KeyProvider
	latency time.Duration
}

func (s slowKeys) GenerateDataKey(ctx context.Context, k enc.KeyRef) ([]byte, []byte, error) {
	time.Sleep(s.latency)
	return s.KeyProvider.GenerateDataKey(ctx, k)
}

func (s slowKeys) DecryptDataKey(ctx context.Context, k enc.KeyRef, blob []byte) ([]byte, error) {
	time.Sleep(s.latency)
	return s.KeyProvider.DecryptDataKey(ctx, k, blob)
}

var benchCache = enc.CacheLimits{MaxAge: time.Hour, MaxUses: 1 << 30, MaxEntries: 100}

type benchCase struct {
	name    string
	values  int
	cache   bool
	version byte
	latency time.Duration
}

func benchCases() []benchCase {
	var cs []benchCase
	for _, n := range []int{1, 10, 100} {
		for _, cache := range []bool{false, true} {
			cs = append(cs, benchCase{values: n, cache: cache, version: enc.Version1})
		}
	}
	cs = append(cs,
		benchCase{values: 10, version: enc.Version2},
		benchCase{values: 10, version: enc.Version1, latency: 2 * time.Millisecond},
		benchCase{values: 10, version: enc.Version1, latency: 2 * time.Millisecond, cache: true},
	)
	for i, c := range cs {
		cache := "off"
		if c.cache {
			cache = "on"
		}
		cs[i].name = fmt.Sprintf("values=%d/cache=%s/v%d", c.values, cache, c.version)
		if c.latency > 0 {
			cs[i].name += "/kms=" + c.latency.String()
		}
	}
	return cs
}

func (c benchCase) setup() (*enc.Encryptor, enc.Spec, enc.Binding) {
	var keys enc.KeyProvider = enctest.New()
	if c.latency > 0 {
		keys = slowKeys{keys, c.latency}
	}
	var opts []enc.Option
	if c.cache {
		opts = append(opts, enc.WithCache(benchCache))
	}
	s := enc.Spec{KeyID: "alias/bench", Version: c.version}
	return enc.New(keys, opts...), s, enc.Binding{Attribute: "ssn", Key: []enc.KeyAttribute{enc.StringKey("pk", "USER#123")}}
}

// BenchmarkSeal seals N values of 16 bytes in one call.
func BenchmarkSeal(b *testing.B) {
	ctx := context.Background()
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			e, s, bind := c.setup()
			reqs := make([]enc.SealRequest, c.values)
			for i := range reqs {
				reqs[i] = enc.SealRequest{Spec: s, Plaintext: []byte("0123456789abcdef"), Binding: bind}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := e.Seal(ctx, reqs); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(e.Stats().GenerateDataKeyCalls)/float64(b.N), "generate/op")
		})
	}
}

// BenchmarkOpen opens N values in one call, each call reading values that a
// separate write sealed (so under one data key per call, as an item or a
// page of items written together would be).
func BenchmarkOpen(b *testing.B) {
	ctx := context.Background()
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			e, s, bind := c.setup()
			sealReqs := make([]enc.SealRequest, c.values)
			for i := range sealReqs {
				sealReqs[i] = enc.SealRequest{Spec: s, Plaintext: []byte("0123456789abcdef"), Binding: bind}
			}
			stored, err := e.Seal(ctx, sealReqs)
			if err != nil {
				b.Fatal(err)
			}
			reqs := make([]enc.OpenRequest, c.values)
			for i := range reqs {
				reqs[i] = enc.OpenRequest{Spec: s, Stored: stored[i], Binding: bind}
			}
			before := e.Stats()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := e.Open(ctx, reqs); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			st := e.Stats()
			b.ReportMetric(float64(st.DecryptCalls-before.DecryptCalls)/float64(b.N), "decrypt/op")
		})
	}
}
