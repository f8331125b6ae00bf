package repo_test

import (
	"context"
	"testing"
	"time"

	"github.com/dynoseal/dynoseal/repo"
)

// BenchmarkMigrate migrates 10,000 members through the in-process DynamoDB
// (internal/fakedynamo) and the in-memory KMS (enctest), in pages of 100:
//
//   - mixed: a third plaintext, a third version 1 under an old key, a third
//     version 2 under the current key (6,667 items written);
//   - current: the same table once migrated (nothing written).
//
// It reports items/s (items scanned per second of the run) and the KMS
// calls of one run (kms-calls/op).
func BenchmarkMigrate(b *testing.B) {
	const n = 10000
	for _, c := range []struct {
		name     string
		migrated bool
	}{{"mixed10000", false}, {"current10000", true}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			var elapsed time.Duration
			var kms int64
			for b.Loop() {
				b.StopTimer()
				e := newMigEnv(b)
				e.seed(b, n)
				r := e.repo(b, migCurrent)
				if c.migrated {
					if _, err := r.Migrate(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				start := time.Now()
				st, err := r.Migrate(ctx, repo.MigrateBatchSize(100))
				elapsed += time.Since(start)
				if err != nil || st.Scanned != n {
					b.Fatalf("%+v, %v", st, err)
				}
				kms += st.KMSCalls
			}
			b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "items/s")
			b.ReportMetric(float64(kms)/float64(b.N), "kms-calls/op")
		})
	}
}
