package integration

import (
	"context"
	"testing"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/repo"
)

// 2,000 mixed items migrate while a writer changes some of them; nothing of
// the writer's is lost, every value ends sealed in version 2 under the
// current key, and a second run writes nothing.
func TestMigrateMixedTableUnderConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	_, newAlias := f.env.Key(t)
	table := migTable(t, f)
	old := enc.Spec{KeyID: f.alias}
	current := enc.Spec{KeyID: newAlias, Version: enc.Version2, PreviousKeyIDs: []string{f.alias}}
	const n, batch = 2000, 100
	migSeed(t, f, table, n, old, current)

	migrator := migRepo(t, f, table, current)
	writer := migRepo(t, f, table, current)
	renamed, resealed := runMigrationWriter(t, f, table, writer, n)
	var progress []repo.MigrateStats
	st, err := migrator.Migrate(ctx, repo.MigrateBatchSize(batch), repo.MigrateProgress(func(s repo.MigrateStats) { progress = append(progress, s) }))
	renamed.Wait()
	if err != nil {
		t.Fatalf("Migrate: %v (stats %+v)", err, st)
	}
	t.Logf("%s: %+v in %d progress calls; KMS %+v", f.env.Backend, st, len(progress), migrator.Encryptor().Stats())
	if st.Scanned < n || st.Failed != 0 || st.Next != "" || len(progress) < n/batch {
		t.Fatalf("stats %+v after %d progress calls", st, len(progress))
	}
	// One call per distinct data key for the whole run (the two BatchPut
	// calls of the seed made one each; each of the writer's SSN updates made
	// one), one GenerateDataKey per page (and per round of items read again),
	// and one DescribeKey per alias the spec names.
	distinct, pages, aliases := int64(2+len(resealed)), (st.Scanned+batch-1)/batch+st.Retried, int64(2)
	if bound := distinct + pages + aliases; st.KMSCalls > bound {
		t.Fatalf("%d KMS calls, more than %d (distinct data keys %d + pages %d + alias lookups %d)", st.KMSCalls, bound, distinct, pages, aliases)
	}
	final := migRepo(t, f, table, enc.Spec{KeyID: newAlias, Version: enc.Version2, RequireSealed: true, MinVersion: enc.Version2})
	migCheckAll(t, final, n, resealed)

	again, err := migrator.Migrate(ctx, repo.MigrateBatchSize(batch))
	if err != nil || again.Changed != 0 || again.Skipped != int64(n) {
		t.Fatalf("second run: %+v, %v; want every item skipped and nothing written", again, err)
	}
}
