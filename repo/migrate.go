package repo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/internal/callstats"
	"github.com/dynoseal/dynoseal/internal/pace"
	"github.com/dynoseal/dynoseal/internal/pagetoken"
)

// MigrateOptions tune Migrate.
type MigrateOptions struct {
	// Segment and Segments split the table among several runs (processes,
	// Lambda invocations) through DynamoDB's parallel scan: this run
	// migrates segment Segment of Segments. Segments 0 migrates the whole
	// table.
	Segment, Segments int
	// From resumes a run from the Next of its last MigrateStats.
	From string
	// ItemsPerSecond caps the items read per second; 0 is no cap.
	ItemsPerSecond float64
	// WriteUnitsPerSecond caps the write capacity the run's writes consume
	// per second; 0 is no cap.
	WriteUnitsPerSecond float64
	// DryRun counts what would change and writes nothing. It makes the KMS
	// calls of a real run: whether a sealed value is under the current key
	// only KMS can tell.
	DryRun bool
	// Progress, when set, is called after every page with the counts so far.
	Progress func(MigrateStats)
	// BatchSize is the items read per page, whose values are sealed
	// together: one data key per distinct key and context per page.
	// Default 100.
	BatchSize int
	// Attempts is how many times an item that a concurrent write changed is
	// read and migrated again before it is reported as failed. Default 5.
	Attempts int
	// FromSpecs holds, by spec name, the spec that stored values were
	// sealed under when it differs in what the value does not record, its
	// static Context (see MigrateFromSpec).
	FromSpecs map[string]enc.Spec
}

// MigrateOption changes [MigrateOptions].
type MigrateOption func(*MigrateOptions)

// MigrateSegment makes the run migrate segment i (from 0) of total.
func MigrateSegment(i, total int) MigrateOption {
	return func(o *MigrateOptions) { o.Segment, o.Segments = i, total }
}

// MigrateFrom resumes a run from token, the Next of its last MigrateStats.
func MigrateFrom(token string) MigrateOption { return func(o *MigrateOptions) { o.From = token } }

// MigrateItemsPerSecond caps the items read per second.
func MigrateItemsPerSecond(n float64) MigrateOption {
	return func(o *MigrateOptions) { o.ItemsPerSecond = n }
}

// MigrateWriteUnitsPerSecond caps the write capacity consumed per second.
func MigrateWriteUnitsPerSecond(n float64) MigrateOption {
	return func(o *MigrateOptions) { o.WriteUnitsPerSecond = n }
}

// MigrateDryRun counts what would change and writes nothing.
func MigrateDryRun() MigrateOption { return func(o *MigrateOptions) { o.DryRun = true } }

// MigrateProgress calls fn after every page with the counts so far.
func MigrateProgress(fn func(MigrateStats)) MigrateOption {
	return func(o *MigrateOptions) { o.Progress = fn }
}

// MigrateBatchSize sets the items read, and sealed together, per page.
func MigrateBatchSize(n int) MigrateOption { return func(o *MigrateOptions) { o.BatchSize = n } }

// MigrateAttempts sets how many times an item changed by concurrent writes
// is read and migrated again before it is reported as failed.
func MigrateAttempts(n int) MigrateOption { return func(o *MigrateOptions) { o.Attempts = n } }

// MigrateFromSpec says that values of the spec registered as name were
// sealed under old, which differs in its static Context (a value does not
// record its context): they are opened under old and sealed under the
// current spec. Values that do not open under old (written under the
// current spec already) are migrated as usual, at the cost of the failed
// Decrypt. Readers cannot open both kinds at once, so run such a migration
// while nothing reads the attribute, or move readers after it.
func MigrateFromSpec(name string, old enc.Spec) MigrateOption {
	return func(o *MigrateOptions) {
		if o.FromSpecs == nil {
			o.FromSpecs = map[string]enc.Spec{}
		}
		o.FromSpecs[name] = old
	}
}

// MigrateStats counts what a run (or one segment of it) did.
type MigrateStats struct {
	Scanned int64 // items read
	Changed int64 // items written (in a dry run: that would be)
	Skipped int64 // items in their current form already, or deleted meanwhile
	Failed  int64 // items that could not be migrated (see the error)
	Retried int64 // items read again because a concurrent write changed them
	Values  int64 // values rewritten
	// Beacons counts the beacons written or removed because they were
	// missing or did not hold their value's beacon.
	Beacons int64
	// KMSCalls counts the KMS requests the run made (GenerateDataKey,
	// Decrypt, ReEncrypt, DescribeKey, and GenerateMac for beacons).
	KMSCalls int64
	// Next is the token to resume from (see MigrateFrom): the run has
	// migrated everything before it. "" once the segment is done.
	Next string
}

// count adds the changes of an item written to the counts of values and
// beacons.
func (s *MigrateStats) count(changes []change) {
	for _, c := range changes {
		switch {
		case c.keep:
		case c.beacon:
			s.Beacons++
		default:
			s.Values++
		}
	}
}

// Migrate brings every stored encrypted value of the table (or of one
// segment of it) to its spec's current form: plaintext is sealed; values
// under a previous key move to the spec's KeyID; version-1 envelopes become
// version 2 when the spec says Version 2. Values in their current form are
// left alone, so a second run over a migrated table writes nothing.
//
// It is safe on a live table. Only the values that change are written, each
// item with one UpdateItem that requires every value it replaces (and every
// attribute the values' encryption context comes from) to be as read: a
// concurrent write is never lost, and the item is read again and migrated
// anew (Attempts times at most, then reported). A versioned item's version
// is increased, so that writers holding it as it was see the change.
//
// KMS: per page of BatchSize items, one call per distinct data key among the
// values that must change (ReEncrypt where only the key changes in a
// version-1 envelope, else Decrypt), and one GenerateDataKey per distinct
// key and context for the values sealed anew. The repository needs both
// kms:Decrypt (or kms:ReEncryptFrom and kms:ReEncryptTo) and
// kms:GenerateDataKey: a ReadOnly or WriteOnly mode is refused.
//
// The error joins the first failures of items (the others are counted in
// Failed) or says why the run stopped (a failed request, ctx ending); the
// stats are returned either way, with Next to resume from.
func (r *Repo[T]) Migrate(ctx context.Context, opts ...MigrateOption) (st MigrateStats, err error) {
	ctx, sp := r.trace(ctx, "Migrate", 0)
	defer func() { sp.setItems(int(st.Scanned)); sp.end(&err) }()
	m, err := r.newMigration(opts)
	if err != nil {
		return MigrateStats{}, err
	}
	start, err := m.resumeKey()
	if err != nil {
		return MigrateStats{}, err
	}
	defer m.rewrapper.Close()
	defer m.session.Close()
	// The run's own count: the encryptor's Stats also count other work
	// done with it meanwhile.
	ctx = callstats.With(ctx, &m.calls)
	for {
		next, err := m.step(ctx, start)
		if err != nil {
			return m.stats, err
		}
		if next == nil {
			return m.stats, firstErrors(m.failures, 5)
		}
		start = next
	}
}

// step migrates the page from start, brings the stats up to date and
// reports progress; next is nil after the last page.
func (m *migration[T]) step(ctx context.Context, start attrMap) (next attrMap, err error) {
	next, err = m.page(ctx, start)
	m.stats.KMSCalls = m.calls.KMS.Load()
	if err != nil {
		return nil, err
	}
	if m.stats.Next, err = m.token(next); err != nil {
		return nil, err
	}
	if m.o.Progress != nil {
		m.o.Progress(m.stats)
	}
	return next, nil
}

// migration is the state of one Migrate run.
type migration[T any] struct {
	r     *Repo[T]
	o     MigrateOptions
	db    API
	scope pagetoken.Scope
	// rewrapper asks KMS about each distinct data key once for the run;
	// session opens values under the specs of MigrateFromSpec.
	rewrapper *enc.Rewrapper
	session   *enc.Session
	items     *pace.Pacer
	units     *pace.Pacer
	stats     MigrateStats
	failures  []error
	calls     callstats.Calls // the KMS calls of the run
}

func (r *Repo[T]) newMigration(opts []MigrateOption) (*migration[T], error) {
	o := MigrateOptions{BatchSize: 100, Attempts: 5}
	for _, opt := range opts {
		opt(&o)
	}
	if err := r.checkMigrateOptions(o); err != nil {
		return nil, err
	}
	if err := r.checkMigrateSpecs(o); err != nil {
		return nil, err
	}
	db, err := r.db()
	if err != nil {
		return nil, err
	}
	scope := pagetoken.NewScope([]byte("migrate"), []byte(r.table), []byte(strconv.Itoa(o.Segment)), []byte(strconv.Itoa(o.Segments)))
	return &migration[T]{r: r, o: o, db: db, scope: scope, rewrapper: r.encryptor.Rewrapper(), session: r.encryptor.Session(), items: pace.New(o.ItemsPerSecond), units: pace.New(o.WriteUnitsPerSecond)}, nil
}

func (r *Repo[T]) checkMigrateOptions(o MigrateOptions) error {
	for _, c := range []struct {
		bad  bool
		what string
	}{
		{!validSegment(o.Segment, o.Segments), fmt.Sprintf("segment %d of %d: want 0 <= segment < segments", o.Segment, o.Segments)},
		{o.BatchSize < 1 || o.BatchSize > 1000, fmt.Sprintf("batch size %d: want 1 to 1000", o.BatchSize)},
		{o.Attempts < 1, fmt.Sprintf("%d attempts: want at least 1", o.Attempts)},
		{o.ItemsPerSecond < 0 || o.WriteUnitsPerSecond < 0, "negative rate"},
	} {
		if c.bad {
			return fmt.Errorf("repo %s: migrate: %s", r.table, c.what)
		}
	}
	return nil
}

// checkMigrateSpecs refuses specs a migration cannot work with: one that
// cannot both open and seal, a from-spec for a spec T does not use or that
// cannot open.
func (r *Repo[T]) checkMigrateSpecs(o MigrateOptions) error {
	for _, name := range slices.Sorted(maps.Keys(r.plan.specs)) {
		if m := r.plan.specs[name].Mode; m != enc.ReadWrite {
			return fmt.Errorf("repo %s: migrate: spec %q is %s; a migration opens and seals, so it needs ReadWrite", r.table, name, m)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(o.FromSpecs)) {
		from := o.FromSpecs[name]
		if _, ok := r.plan.specs[name]; !ok {
			return fmt.Errorf("repo %s: migrate: MigrateFromSpec(%q): %s uses no spec of that name", r.table, name, r.plan.typ)
		}
		if err := from.Validate(); err != nil || !from.Mode.CanDecrypt() {
			return fmt.Errorf("repo %s: migrate: MigrateFromSpec(%q): the old spec cannot open values (%s): %v", r.table, name, from.Mode, err)
		}
	}
	return nil
}

// validSegment says whether segment i of total is one: with total 0 (the
// whole table) only segment 0.
func validSegment(i, total int) bool {
	if total == 0 {
		return i == 0
	}
	return i >= 0 && i < total
}

func (m *migration[T]) resumeKey() (attrMap, error) {
	if m.o.From == "" {
		return nil, nil
	}
	key, err := pagetoken.Decode(m.o.From, m.scope)
	if err != nil {
		return nil, fmt.Errorf("repo %s: migrate: %w", m.r.table, err)
	}
	return key, nil
}

func (m *migration[T]) token(next attrMap) (string, error) {
	if next == nil {
		return "", nil
	}
	return pagetoken.Encode(m.scope, next)
}

// page migrates one page of the scan from start and returns where the next
// one starts (nil at the end).
func (m *migration[T]) page(ctx context.Context, start attrMap) (attrMap, error) {
	if err := m.items.Wait(ctx, float64(m.o.BatchSize)); err != nil {
		return nil, fmt.Errorf("repo %s: migrate: %w", m.r.table, err)
	}
	in := &dynamodb.ScanInput{TableName: aws.String(m.r.table), Limit: aws.Int32(int32(m.o.BatchSize)), ConsistentRead: aws.Bool(true), ExclusiveStartKey: start}
	if m.o.Segments > 0 {
		in.Segment, in.TotalSegments = aws.Int32(int32(m.o.Segment)), aws.Int32(int32(m.o.Segments))
	}
	out, err := m.db.Scan(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("repo %s: migrate: scan: %w", m.r.table, err)
	}
	m.stats.Scanned += int64(len(out.Items))
	if err := m.migrateItems(ctx, out.Items, 1); err != nil {
		return nil, err
	}
	return out.LastEvaluatedKey, nil
}

// fail records an item that could not be migrated.
func (m *migration[T]) fail(err error) {
	m.stats.Failed++
	m.failures = append(m.failures, err)
}

var errGone = errors.New("item deleted meanwhile")
