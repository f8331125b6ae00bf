package repo

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/internal/batchrun"
)

// DynamoDB's limits for one transaction.
const (
	maxTxItems = 100
	maxTxBytes = 4 << 20
)

// ErrTxLimit is matched by a transaction refused before any request because
// it breaks one of DynamoDB's limits: at most 100 operations, at most 4 MB
// of items, one operation per item. The error names the limit.
var ErrTxLimit = errors.New("dynoseal: transaction exceeds a DynamoDB limit")

// TxWrite is one operation of [Transact], made by a repository's TxPut,
// TxUpdate, TxDelete or TxCheck, or the transaction's idempotency token
// made by [TxToken]. An error in making it (a bad option, an item that does
// not fit) surfaces from Transact, before any request.
type TxWrite struct {
	token   string
	prepare func() (*txWriteOp, error)
	tel     *telemetry // of the operation's repository
}

// TxToken makes Transact send token as DynamoDB's ClientRequestToken, so
// that a transaction retried with the same token (after a timeout, say)
// is applied at most once within ten minutes. It is not an operation and
// counts towards no limit.
func TxToken(token string) TxWrite { return TxWrite{token: token} }

// txWriteOp is one operation of a transaction, checked and marshalled, with
// its encrypted values reserved.
type txWriteOp struct {
	op    string // "put", "update", "delete", "check"
	table string
	key   Key
	id    string // table and canonical key: one operation per item
	size  int    // bytes of item the operation carries, sealed values as least
	db    API
	enc   *enc.Encryptor
	wait  batchrun.Limits
	// seal holds the reserved values; nil when the operation seals nothing.
	seal *pendingSeal
	// build returns the request item, once the values are sealed, and
	// adds what the sealed values take to size.
	build func() (types.TransactWriteItem, error)
	// reason explains the operation's part in a cancelled transaction.
	reason func(ctx context.Context, r types.CancellationReason) TxReason
}

// Transact writes ops (puts, updates, deletes and condition checks, over
// repositories of any item types on one DynamoDB client) in one
// TransactWriteItems request: all of them happen, or none.
//
// Before any request it checks every operation and DynamoDB's limits (at
// most 100 operations and 4 MB of items, one operation per item: ErrTxLimit
// otherwise). Then it seals every encrypted value of the transaction
// together: one data key per distinct KMS key, region and encryption
// context for the whole transaction, whatever the number of operations and
// values. If sealing fails nothing is sent.
//
// A transaction DynamoDB cancels gives a *TxCanceledError with the reason of
// each operation, in order; it matches ErrConditionFailed when a condition
// failed and ErrVersionConflict when a version check failed. Nothing was
// written. Cancellations that are only conflicts with other transactions
// are sent again, with the backoff of the first operation's repository
// (WithBatchBackoff), until they go through or ctx ends.
func Transact(ctx context.Context, ops ...TxWrite) (err error) {
	ctx, sp := traceTx(ctx, "Transact", len(ops), txWriteTelemetry(ops))
	defer sp.end(&err)
	token, prepared, err := prepareWrites(ops)
	if err != nil {
		return err
	}
	defer releaseWrites(prepared)
	if err := sealWrites(ctx, prepared); err != nil {
		return err
	}
	in := &dynamodb.TransactWriteItemsInput{TransactItems: make([]types.TransactWriteItem, len(prepared))}
	if token != "" {
		in.ClientRequestToken = aws.String(token)
	}
	for i, p := range prepared {
		if in.TransactItems[i], err = p.build(); err != nil {
			return err
		}
	}
	if err := checkTxBytes(prepared); err != nil {
		return err
	}
	return sendWrites(ctx, prepared, in)
}

// prepareWrites checks and marshals every operation, and the limits that
// can be checked before sealing.
func prepareWrites(ops []TxWrite) (string, []*txWriteOp, error) {
	var token string
	var out []*txWriteOp
	seen := map[string]int{}
	for i, w := range ops {
		if w.prepare == nil {
			if err := setToken(&token, w, i); err != nil {
				releaseWrites(out)
				return "", nil, err
			}
			continue
		}
		p, err := w.prepare()
		if err == nil {
			err = checkTxItem(p, len(out), seen)
		}
		if err != nil {
			releaseWrites(out)
			return "", nil, err
		}
		out = append(out, p)
	}
	if err := checkTxOps(out); err != nil {
		releaseWrites(out)
		return "", nil, err
	}
	return token, out, nil
}

// setToken takes the token of w, argument i of Transact.
func setToken(token *string, w TxWrite, i int) error {
	switch {
	case w.token == "":
		return fmt.Errorf("repo: transact: argument %d is neither an operation made by a repository nor a TxToken", i)
	case *token != "":
		return errors.New("repo: transact: TxToken given twice")
	}
	*token = w.token
	return nil
}

// checkTxItem checks that operation n is the only one of its item.
func checkTxItem(p *txWriteOp, n int, seen map[string]int) error {
	if m, dup := seen[p.id]; dup {
		if p.seal != nil {
			p.seal.s.release()
		}
		return fmt.Errorf("repo: transact: operations %d and %d both write item %s of %s; DynamoDB takes one operation per item: %w", m, n, p.key, p.table, ErrTxLimit)
	}
	seen[p.id] = n
	return nil
}

// checkTxOps checks the count, the client and the size of the operations.
func checkTxOps(ops []*txWriteOp) error {
	switch {
	case len(ops) == 0:
		return errors.New("repo: transact: no operations")
	case len(ops) > maxTxItems:
		return fmt.Errorf("repo: transact: %d operations, more than DynamoDB's %d: %w", len(ops), maxTxItems, ErrTxLimit)
	}
	for i, p := range ops[1:] {
		if p.db != ops[0].db {
			return fmt.Errorf("repo: transact: operation %d (%s of %s) uses another DynamoDB client than operation 0; a transaction goes to one client", i+1, p.op, p.table)
		}
	}
	return checkTxBytes(ops)
}

// checkTxBytes checks the transaction's items against DynamoDB's 4 MB.
func checkTxBytes(ops []*txWriteOp) error {
	total := 0
	for _, p := range ops {
		total += p.size
	}
	if total > maxTxBytes {
		return fmt.Errorf("repo: transact: the items come to at least %d bytes, more than DynamoDB's 4 MB: %w", total, ErrTxLimit)
	}
	return nil
}

func releaseWrites(ops []*txWriteOp) {
	for _, p := range ops {
		if p.seal != nil {
			p.seal.s.release()
		}
	}
}

// sealWrites seals the values of all operations with one Seal call per
// encryptor, so each distinct key and context gets one data key.
func sealWrites(ctx context.Context, ops []*txWriteOp) error {
	var order []*enc.Encryptor
	groups := map[*enc.Encryptor][]*txWriteOp{}
	for _, p := range ops {
		if p.seal == nil {
			continue
		}
		if _, ok := groups[p.enc]; !ok {
			order = append(order, p.enc)
		}
		groups[p.enc] = append(groups[p.enc], p)
	}
	for _, e := range order {
		if err := sealGroup(ctx, e, groups[e]); err != nil {
			return err
		}
	}
	return nil
}

func sealGroup(ctx context.Context, e *enc.Encryptor, ops []*txWriteOp) error {
	defer func() {
		for _, p := range ops {
			p.seal.s.wipe()
		}
	}()
	reqs, counts, breqs, bcounts, err := groupRequests(ops)
	if err != nil {
		return err
	}
	if len(reqs) > 0 {
		stored, err := e.Seal(ctx, reqs)
		if err != nil {
			return sealedOpFailed(ops, counts, err)
		}
		for i, p := range ops {
			p.seal.s.fill(stored[:counts[i]])
			stored = stored[counts[i]:]
		}
	}
	if len(breqs) == 0 {
		return nil
	}
	digests, err := e.Beacons(ctx, breqs)
	if err != nil {
		return sealedOpFailed(ops, bcounts, err)
	}
	for i, p := range ops {
		p.seal.s.fillBeacons(digests[:bcounts[i]])
		digests = digests[bcounts[i]:]
	}
	return nil
}

// groupRequests collects the seal and beacon requests of ops, with how
// many each operation added, so that one call of each serves them all.
func groupRequests(ops []*txWriteOp) (reqs []enc.SealRequest, counts []int, breqs []enc.BeaconRequest, bcounts []int, err error) {
	counts, bcounts = make([]int, len(ops)), make([]int, len(ops))
	for i, p := range ops {
		rs, err := p.seal.s.requests(p.seal.items, p.seal.absent)
		if err != nil {
			return nil, nil, nil, nil, p.seal.failed(err)
		}
		bs, err := p.seal.s.beaconRequests(p.seal.items, p.seal.absent)
		if err != nil {
			return nil, nil, nil, nil, p.seal.failed(err)
		}
		reqs, counts[i] = append(reqs, rs...), len(rs)
		breqs, bcounts[i] = append(breqs, bs...), len(bs)
	}
	return reqs, counts, breqs, bcounts, nil
}

// sealedOpFailed names the operation whose value could not be sealed;
// counts are the requests each operation added, in order.
func sealedOpFailed(ops []*txWriteOp, counts []int, err error) error {
	var ee *enc.Error
	if errors.As(err, &ee) {
		at := ee.Index
		for i, n := range counts {
			if at < n {
				p := ops[i]
				return fmt.Errorf("repo: transact: %s %s %s: %w", p.op, p.table, p.key, err)
			}
			at -= n
		}
	}
	return fmt.Errorf("repo: transact: %w", err)
}

// sendWrites sends the transaction, again while DynamoDB cancels it only
// for conflicts with other transactions.
func sendWrites(ctx context.Context, ops []*txWriteOp, in *dynamodb.TransactWriteItemsInput) error {
	for attempt := 0; ; attempt++ {
		_, err := ops[0].db.TransactWriteItems(ctx, in)
		if err == nil {
			return nil
		}
		reason := func(i int, r types.CancellationReason) TxReason { return ops[i].reason(ctx, r) }
		if !retryable(err) {
			return txError("transact", len(ops), err, reason)
		}
		if werr := ops[0].wait.Pause(ctx, attempt); werr != nil {
			return fmt.Errorf("repo: transact: %w", errors.Join(werr, txError("transact", len(ops), err, reason)))
		}
	}
}

// retryable says whether a failed transaction failed only for conflicts
// with other transactions (or an earlier attempt still in progress), so
// that sending it again can succeed.
func retryable(err error) bool {
	var inProgress *types.TransactionInProgressException
	if errors.As(err, &inProgress) {
		return true
	}
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) || len(tce.CancellationReasons) == 0 {
		return false
	}
	conflict := false
	for _, r := range tce.CancellationReasons {
		switch aws.ToString(r.Code) {
		case "", TxReasonNone:
		case TxReasonConflict:
			conflict = true
		default:
			return false
		}
	}
	return conflict
}

// txError turns a failed transaction into a *TxCanceledError when
// DynamoDB cancelled it, with each operation's reason.
func txError(op string, ops int, err error, reason func(int, types.CancellationReason) TxReason) error {
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) {
		return fmt.Errorf("repo: %s: %w", op, err)
	}
	e := &TxCanceledError{Op: op, Err: err}
	for i, r := range tce.CancellationReasons[:min(len(tce.CancellationReasons), ops)] {
		e.Reasons = append(e.Reasons, reason(i, r))
	}
	return e
}

// Codes of [TxReason], as DynamoDB gives them.
const (
	TxReasonNone            = "None" // the operation was fine; others cancelled the transaction
	TxReasonConditionFailed = "ConditionalCheckFailed"
	TxReasonConflict        = "TransactionConflict"
	TxReasonThrottled       = "ThrottlingError"
	TxReasonValidation      = "ValidationError"
)

// TxReason is the part one operation had in a cancelled transaction.
type TxReason struct {
	// Code is DynamoDB's cancellation code for the operation: one of the
	// TxReason constants, or another DynamoDB gives (e.g.
	// "ProvisionedThroughputExceeded", "ItemCollectionSizeLimitExceeded").
	Code    string
	Message string
	Op      string // "put", "update", "delete", "check" or "get"
	Table   string
	Key     Key
	// VersionConflict says the operation's version check failed.
	VersionConflict bool
	// Current is the item as it was, a value of the operation's item type
	// with its encrypted fields opened, when the operation asked for it with
	// ReturnCurrentOnFailure, its condition failed and the item exists; nil
	// otherwise. A value that could not be opened stays sealed.
	Current any
}

// TxCanceledError is returned by Transact and TransactGet when DynamoDB
// cancelled the transaction. Nothing was written. It matches
// ErrConditionFailed when an operation's condition failed, ErrVersionConflict
// when a version check failed, and wraps the SDK's
// *types.TransactionCanceledException.
type TxCanceledError struct {
	Op      string // "transact" or "transact get"
	Reasons []TxReason
	Err     error
}

func (e *TxCanceledError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "repo: %s: cancelled", e.Op)
	for i, r := range e.Reasons {
		if r.Code == TxReasonNone || r.Code == "" {
			continue
		}
		fmt.Fprintf(&b, "; operation %d (%s %s %s): %s", i, r.Op, r.Table, r.Key, r.Code)
		if r.VersionConflict {
			b.WriteString(" (version conflict)")
		}
	}
	return b.String()
}

// Unwrap gives ErrConditionFailed and ErrVersionConflict as they apply, and
// the SDK's error.
func (e *TxCanceledError) Unwrap() []error {
	var out []error
	for _, r := range e.Reasons {
		if r.Code == TxReasonConditionFailed {
			out = append(out, ErrConditionFailed)
			break
		}
	}
	for _, r := range e.Reasons {
		if r.VersionConflict {
			out = append(out, ErrVersionConflict)
			break
		}
	}
	return append(out, e.Err)
}
