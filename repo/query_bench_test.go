package repo_test

import (
	"context"
	"testing"

	"github.com/dynoseal/dynoseal/repo"
)

// BenchmarkQuery measures the repository's own cost per page of 100 items
// with two encrypted fields under one data key: unmarshalling, grouping and
// opening (the in-memory key provider stands in for KMS).
func BenchmarkQuery(b *testing.B) {
	r, _ := newFakeRepo(b, 1000, 100)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for _, err := range r.Query(ctx, keyA, repo.PageSize(100)) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 1000 {
			b.Fatalf("%d items", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/item")
}

// BenchmarkQueryPageFromToken measures a one-item page that starts from a
// token: decoding and checking it, building the request, opening the item
// and encoding the next token.
func BenchmarkQueryPageFromToken(b *testing.B) {
	r, _ := newFakeRepo(b, 100, 100)
	ctx := context.Background()
	p, err := r.QueryPage(ctx, keyA, "", repo.Limit(10))
	if err != nil || p.Next == "" {
		b.Fatal(p.Next, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.QueryPage(ctx, keyA, p.Next, repo.Limit(1)); err != nil {
			b.Fatal(err)
		}
	}
}
