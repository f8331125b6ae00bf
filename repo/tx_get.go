package repo

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/internal/batchrun"
)

// TxRead is one read of [TransactGet], made by a repository's TxGet.
type TxRead struct {
	prepare func() (*txReadOp, error)
	tel     *telemetry // of the read's repository
}

// txReadOp is one read of a transaction: its request and where its item goes.
type txReadOp struct {
	table string
	key   Key
	id    string
	db    API
	enc   *enc.Encryptor
	wait  batchrun.Limits
	get   *types.Get
	// load opens the item read (nil when there is none) into the caller's
	// destination, with by, shared by the reads of one encryptor.
	load func(ctx context.Context, by valueOpener, m attrMap) error
}

// TxGet reads the item with key k into *dst as a read of [TransactGet].
func (r *Repo[T]) TxGet(k Key, dst *T) TxRead {
	return TxRead{tel: r.tel, prepare: func() (*txReadOp, error) { return r.txGet(k, dst) }}
}

func (r *Repo[T]) txGet(k Key, dst *T) (*txReadOp, error) {
	if dst == nil {
		return nil, fmt.Errorf("repo %s: TxGet %s: nil destination", r.table, k)
	}
	db, err := r.db()
	if err != nil {
		return nil, err
	}
	km, err := r.keyMap(k)
	if err != nil {
		return nil, err
	}
	id, err := r.keyID(km)
	if err != nil {
		return nil, fmt.Errorf("repo %s: TxGet %s: %w", r.table, k, err)
	}
	load := func(ctx context.Context, by valueOpener, m attrMap) error {
		var zero T
		*dst = zero
		if m == nil {
			return fmt.Errorf("repo %s: transact get %s: %w", r.table, k, ErrNotFound)
		}
		items, errs := r.openItems(ctx, by, "transact get", []attrMap{m}, false)
		*dst = items[0]
		return errs[0]
	}
	return &txReadOp{table: r.table, key: k, id: r.table + "\x00" + id, db: db, enc: r.encryptor, wait: r.txLimits("TransactGet"),
		get: &types.Get{TableName: aws.String(r.table), Key: km}, load: load}, nil
}

// TransactGet reads the items of ops (of repositories of any item types on
// one DynamoDB client) in one TransactGetItems request, as one consistent
// snapshot, and opens them into their destinations: one Decrypt per
// distinct data key for the whole call.
//
// At most 100 reads, one per item (ErrTxLimit otherwise, before any
// request). Every destination is set: to its item, or to the zero value
// when the item does not exist or cannot be opened. The error then joins
// one error per such read: matching ErrNotFound for a missing item, an
// *ItemError for one that does not open. A read DynamoDB cancels because
// of a conflicting write is sent again, as Transact does.
func TransactGet(ctx context.Context, ops ...TxRead) (err error) {
	ctx, sp := traceTx(ctx, "TransactGet", len(ops), txReadTelemetry(ops))
	defer sp.end(&err)
	reads, err := prepareReads(ops)
	if err != nil {
		return err
	}
	in := &dynamodb.TransactGetItemsInput{TransactItems: make([]types.TransactGetItem, len(reads))}
	for i, rd := range reads {
		in.TransactItems[i] = types.TransactGetItem{Get: rd.get}
	}
	out, err := sendReads(ctx, reads, in)
	if err != nil {
		return err
	}
	if len(out.Responses) != len(reads) {
		return fmt.Errorf("repo: transact get: %d responses to %d reads", len(out.Responses), len(reads))
	}
	return loadReads(ctx, reads, out.Responses)
}

func prepareReads(ops []TxRead) ([]*txReadOp, error) {
	switch {
	case len(ops) == 0:
		return nil, errors.New("repo: transact get: no reads")
	case len(ops) > maxTxItems:
		return nil, fmt.Errorf("repo: transact get: %d reads, more than DynamoDB's %d: %w", len(ops), maxTxItems, ErrTxLimit)
	}
	reads := make([]*txReadOp, len(ops))
	seen := map[string]int{}
	for i, op := range ops {
		if op.prepare == nil {
			return nil, fmt.Errorf("repo: transact get: read %d was not made by TxGet", i)
		}
		rd, err := op.prepare()
		if err != nil {
			return nil, err
		}
		if err := checkRead(rd, i, reads[0], seen); err != nil {
			return nil, err
		}
		reads[i] = rd
	}
	return reads, nil
}

// checkRead checks that read i is the only one of its item and goes to
// the client of the first.
func checkRead(rd *txReadOp, i int, first *txReadOp, seen map[string]int) error {
	if j, dup := seen[rd.id]; dup {
		return fmt.Errorf("repo: transact get: reads %d and %d both read item %s of %s; DynamoDB takes one operation per item: %w", j, i, rd.key, rd.table, ErrTxLimit)
	}
	if first != nil && rd.db != first.db {
		return fmt.Errorf("repo: transact get: read %d (%s) uses another DynamoDB client than read 0; a transaction goes to one client", i, rd.table)
	}
	seen[rd.id] = i
	return nil
}

func sendReads(ctx context.Context, reads []*txReadOp, in *dynamodb.TransactGetItemsInput) (*dynamodb.TransactGetItemsOutput, error) {
	reason := func(i int, c types.CancellationReason) TxReason {
		return TxReason{Code: aws.ToString(c.Code), Message: aws.ToString(c.Message), Op: "get", Table: reads[i].table, Key: reads[i].key}
	}
	for attempt := 0; ; attempt++ {
		out, err := reads[0].db.TransactGetItems(ctx, in)
		if err == nil {
			return out, nil
		}
		if !retryable(err) {
			return nil, txError("transact get", len(reads), err, reason)
		}
		if werr := reads[0].wait.Pause(ctx, attempt); werr != nil {
			return nil, fmt.Errorf("repo: transact get: %w", errors.Join(werr, txError("transact get", len(reads), err, reason)))
		}
	}
}

// loadReads opens the items read, with one session per encryptor so that
// each distinct data key is decrypted once for the whole call.
func loadReads(ctx context.Context, reads []*txReadOp, responses []types.ItemResponse) error {
	sessions := map[*enc.Encryptor]*enc.Session{}
	defer func() {
		for _, s := range sessions {
			s.Close()
		}
	}()
	var errs []error
	for i, rd := range reads {
		s, ok := sessions[rd.enc]
		if !ok {
			s = rd.enc.Session()
			sessions[rd.enc] = s
		}
		errs = append(errs, rd.load(ctx, s, responses[i].Item))
	}
	return joinErrors(errs)
}
