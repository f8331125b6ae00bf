package integration

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/dynotest"
	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

type Order struct {
	Customer string                  `dynamodbav:"customer" repo:"hash"`
	Seq      int                     `dynamodbav:"seq" repo:"range,gsi:by-status:range"`
	Status   string                  `dynamodbav:"status" repo:"gsi:by-status:hash"`
	Total    int                     `dynamodbav:"total"`
	Card     field.Encrypted[string] `dynamodbav:"card" enc:"pii"`
	Address  field.Encrypted[string] `dynamodbav:"address" enc:"pii"`
}

// The data set: customer "C#1" has orders 0..999 (every fourth one "open",
// the others "shipped"), sealed in groups of 100 orders under one data key
// each, as one write call of 100 items would seal them; customers
// C#100..C#299 have one "pending" order each, all under one more data key,
// so a scan spreads over many partitions.
const (
	bigCustomer = "C#1"
	bigCount    = 1000
	sealGroup   = 100
	smallCount  = 200
)

func openOrder(seq int) bool { return seq%4 == 0 }

func orderStatus(customer string, seq int) string {
	switch {
	case customer != bigCustomer:
		return "pending"
	case openOrder(seq):
		return "open"
	}
	return "shipped"
}

func orderCard(customer string, seq int) string { return fmt.Sprintf("4111-%s-%04d", customer, seq) }

// recordingDB counts the Query and Scan requests a repository sends and,
// for each response, the distinct encrypted data keys among its items.
type recordingDB struct {
	*dynamodb.Client
	mu    sync.Mutex
	reads []recordedRead
}

type recordedRead struct {
	op       string
	segment  int32
	items    int
	dataKeys []string
}

func (c *recordingDB) record(op string, segment *int32, items []map[string]types.AttributeValue) {
	keys := map[string]bool{}
	for _, it := range items {
		for _, attr := range []string{"card", "address"} {
			if k, ok := dataKeyOf(it[attr]); ok {
				keys[k] = true
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads = append(c.reads, recordedRead{op: op, segment: aws.ToInt32(segment), items: len(items), dataKeys: slices.Collect(maps.Keys(keys))})
}

func (c *recordingDB) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	out, err := c.Client.Query(ctx, in, opts...)
	if err == nil {
		c.record("query", nil, out.Items)
	}
	return out, err
}

func (c *recordingDB) Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	out, err := c.Client.Scan(ctx, in, opts...)
	if err == nil {
		c.record("scan", in.Segment, out.Items)
	}
	return out, err
}

// take returns the reads recorded since the last take.
func (c *recordingDB) take() []recordedRead {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reads
	c.reads = nil
	return r
}

// distinctDataKeys is the number of data keys the responses hold in all:
// the Decrypt calls one iteration over them makes, since an iteration
// remembers the data keys it has decrypted.
func distinctDataKeys(reads []recordedRead) int64 {
	keys := map[string]bool{}
	for _, r := range reads {
		for _, k := range r.dataKeys {
			keys[k] = true
		}
	}
	return int64(len(keys))
}

// dataKeyOf returns the encrypted data key inside a stored version-1 envelope.
func dataKeyOf(v types.AttributeValue) (string, bool) {
	s, ok := v.(*types.AttributeValueMemberS)
	if !ok || !enc.IsEncrypted(s.Value) {
		return "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s.Value, enc.Prefix))
	if err != nil || len(raw) < 3 {
		return "", false
	}
	n := int(binary.BigEndian.Uint16(raw[1:3]))
	if len(raw) < 3+n {
		return "", false
	}
	return string(raw[3 : 3+n]), true
}

// orderTable creates the orders table with the "by-status" index (status, seq) that Order declares.
func orderTable(t *testing.T, f *fixture, db repo.API) *repo.Repo[Order] {
	t.Helper()
	if _, ok := f.reg.Lookup("pii"); !ok {
		f.reg.MustRegister("pii", enc.Spec{KeyID: f.alias})
	}
	return dynotest.Table[Order](t, f.env, repo.WithRegistry(f.reg), repo.WithClient(db))
}

type orderKey struct {
	customer string
	seq      int
}

// writeOrders stores orders for keys, sealing the encrypted fields of each
// group of keys under one data key, and writes them with raw BatchWriteItem.
func writeOrders(t *testing.T, f *fixture, r *repo.Repo[Order], groups [][]orderKey) {
	t.Helper()
	ctx := context.Background()
	spec, _ := f.reg.Lookup("pii")
	var items []map[string]types.AttributeValue
	for _, g := range groups {
		var reqs []enc.SealRequest
		for _, k := range g {
			reqs = append(reqs,
				enc.SealRequest{Spec: spec, Attribute: "card", Plaintext: []byte(orderCard(k.customer, k.seq))},
				enc.SealRequest{Spec: spec, Attribute: "address", Plaintext: []byte("addr " + k.customer)})
		}
		stored, err := r.Encryptor().Seal(ctx, reqs)
		if err != nil {
			t.Fatal(err)
		}
		for i, k := range g {
			items = append(items, map[string]types.AttributeValue{
				"customer": s(k.customer),
				"seq":      &types.AttributeValueMemberN{Value: strconv.Itoa(k.seq)},
				"status":   s(orderStatus(k.customer, k.seq)),
				"total":    &types.AttributeValueMemberN{Value: strconv.Itoa(k.seq * 7 % 500)},
				"card":     s(stored[2*i]),
				"address":  s(stored[2*i+1]),
			})
		}
	}
	for chunk := range slices.Chunk(items, 25) {
		var reqs []types.WriteRequest
		for _, it := range chunk {
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: it}})
		}
		pending := map[string][]types.WriteRequest{r.Table(): reqs}
		for try := 0; len(pending) > 0; try++ {
			if try == 20 {
				t.Fatalf("BatchWriteItem left %d items unprocessed", len(pending[r.Table()]))
			}
			out, err := f.env.DynamoDB.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				t.Fatalf("BatchWriteItem: %v", err)
			}
			pending = out.UnprocessedItems
			if len(pending) > 0 {
				// Backoff before sending unprocessed items again, as
				// DynamoDB asks; this orders no goroutines.
				time.Sleep(time.Duration(try+1) * 50 * time.Millisecond)
			}
		}
	}
}

func checkOrder(t *testing.T, o Order, customer string, seq int) {
	t.Helper()
	if o.Customer != customer || o.Seq != seq {
		t.Fatalf("got order %s/%d, want %s/%d", o.Customer, o.Seq, customer, seq)
	}
	card, err := o.Card.Value()
	if err != nil || card != orderCard(customer, seq) {
		t.Fatalf("order %s/%d: card %q, %v", customer, seq, card, err)
	}
	addr, err := o.Address.Value()
	if err != nil || addr != "addr "+customer {
		t.Fatalf("order %s/%d: address %q, %v", customer, seq, addr, err)
	}
	if o.Status != orderStatus(customer, seq) {
		t.Fatalf("order %s/%d: status %q", customer, seq, o.Status)
	}
}

func seqs(orders []Order) []int {
	out := make([]int, len(orders))
	for i, o := range orders {
		out[i] = o.Seq
	}
	return out
}

func wantSeqs(keep func(int) bool) []int {
	var out []int
	for i := range bigCount {
		if keep == nil || keep(i) {
			out = append(out, i)
		}
	}
	return out
}

// collect ranges over seq and fails the test on an error.
func collect(t *testing.T, seq func(func(Order, error) bool)) []Order {
	t.Helper()
	var out []Order
	for o, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	}
	return out
}

// distinctGroups is the number of data keys the orders were sealed under.
func distinctGroups(orders []Order) int64 {
	g := map[string]bool{}
	for _, o := range orders {
		if o.Customer == bigCustomer {
			g[fmt.Sprint(o.Seq/sealGroup)] = true
		} else {
			g["small"] = true
		}
	}
	return int64(len(g))
}

// viaURL passes a token through a URL query string and back, as a web
// client would.
func viaURL(t *testing.T, token string) string {
	t.Helper()
	if url.QueryEscape(token) != token {
		t.Fatalf("token %q is not URL-safe", token)
	}
	u, err := url.Parse("https://shop.example/orders?after=" + token)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("after")
}

// orderSet is one test's copy of the data set above: a fresh key and
// orders table (with the "by-status" index), the repository over it, and
// the recording client its reads go through.
type orderSet struct {
	f      *fixture
	rec    *recordingDB
	orders *repo.Repo[Order]
}

// newOrderSet creates the table and writes the data set into it.
func newOrderSet(t *testing.T) *orderSet {
	t.Helper()
	f := newFixture(t)
	rec := &recordingDB{Client: f.env.DynamoDB}
	orders := orderTable(t, f, rec)

	var groups [][]orderKey
	for g := 0; g < bigCount; g += sealGroup {
		var keys []orderKey
		for seq := g; seq < g+sealGroup; seq++ {
			keys = append(keys, orderKey{bigCustomer, seq})
		}
		groups = append(groups, keys)
	}
	var small []orderKey
	for c := range smallCount {
		small = append(small, orderKey{fmt.Sprintf("C#%d", 100+c), 0})
	}
	groups = append(groups, small)
	writeOrders(t, f, orders, groups)
	return &orderSet{f: f, rec: rec, orders: orders}
}

// decrypts is the number of KMS Decrypt calls the repository has made.
func (o *orderSet) decrypts() int64 { return o.orders.Encryptor().Stats().DecryptCalls }

// big is the key condition for the orders of bigCustomer.
var big = expression.Key("customer").Equal(expression.Value(bigCustomer))

func TestQueryPagesLazilyThroughEveryItemInOrder(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	o.rec.take()
	before := o.decrypts()
	got := collect(t, o.orders.Query(ctx, big, repo.PageSize(50)))
	if !slices.Equal(seqs(got), wantSeqs(nil)) {
		t.Fatalf("items out of order or missing: %d items", len(got))
	}
	for _, order := range got {
		checkOrder(t, order, bigCustomer, order.Seq)
	}
	reads := o.rec.take()
	// 20 full pages; DynamoDB may answer the 20th with a LastEvaluatedKey,
	// which costs one more, empty request.
	if n := len(reads); n != 20 && n != 21 {
		t.Fatalf("%d requests for 1000 items in pages of 50", n)
	}
	// The 1000 items were sealed in 10 groups of 100, each under one
	// data key; the iteration decrypts each once and reuses it for the
	// group's second page: 10 Decrypts, not one per page (20), per
	// item (1000) or per field (2000).
	if d := o.decrypts() - before; d != 10 || d != distinctDataKeys(reads) {
		t.Fatalf("%d Decrypt calls, want 10", d)
	}
}

func TestQueryPageTokensRoundTrip(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	var got []Order
	token, pages := "", 0
	for {
		before := o.decrypts()
		p, err := o.orders.QueryPage(ctx, big, token, repo.Limit(64))
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if d := o.decrypts() - before; d != distinctGroups(p.Items) {
			t.Fatalf("page %d: %d Decrypt calls for %d data keys", pages, d, distinctGroups(p.Items))
		}
		got = append(got, p.Items...)
		if p.Next == "" {
			break
		}
		token = viaURL(t, p.Next)
	}
	if !slices.Equal(seqs(got), wantSeqs(nil)) {
		t.Fatalf("%d items, not every item once in order", len(got))
	}
	if pages != 16 {
		t.Fatalf("%d pages of 64 for 1000 items, want 16", pages)
	}
}

func TestQueryDescending(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	o.rec.take()
	got := collect(t, o.orders.Query(ctx, big, repo.Descending(), repo.Limit(5)))
	if !slices.Equal(seqs(got), []int{999, 998, 997, 996, 995}) {
		t.Fatalf("items %v", seqs(got))
	}
	if reads := o.rec.take(); len(reads) != 1 || reads[0].items != 5 {
		t.Fatalf("reads %+v, want one request for 5 items", reads)
	}
}

var openFilter = repo.Filter(expression.Name("status").Equal(expression.Value("open")))

func TestQueryFilter(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	got := collect(t, o.orders.Query(ctx, big, openFilter, repo.PageSize(100)))
	if !slices.Equal(seqs(got), wantSeqs(openOrder)) {
		t.Fatalf("%d filtered items, want the %d open ones in order", len(got), len(wantSeqs(openOrder)))
	}
}

// Filtered pages of a table may end inside a response; the token continues
// after the last item returned.
func TestQueryPageFilterContinuesAfterTheLastItemReturned(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	var paged []Order
	token := ""
	for {
		p, err := o.orders.QueryPage(ctx, big, token, openFilter, repo.Limit(30), repo.PageSize(100))
		if err != nil {
			t.Fatal(err)
		}
		if p.Next != "" && len(p.Items) != 30 {
			t.Fatalf("page of %d items with a next token, want 30", len(p.Items))
		}
		paged = append(paged, p.Items...)
		if p.Next == "" {
			break
		}
		token = viaURL(t, p.Next)
	}
	if !slices.Equal(seqs(paged), wantSeqs(openOrder)) {
		t.Fatalf("%d items over pages, want the %d open ones in order", len(paged), len(wantSeqs(openOrder)))
	}
}

func TestQueryProjection(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	got := collect(t, o.orders.Query(ctx, big, repo.Project("seq", "card"), repo.Limit(3)))
	if len(got) != 3 {
		t.Fatalf("%d items", len(got))
	}
	for i, order := range got {
		card, err := order.Card.Value()
		if err != nil || card != orderCard(bigCustomer, i) {
			t.Fatalf("card %q, %v", card, err)
		}
		addr, err := order.Address.Value()
		if order.Seq != i || order.Status != "" || order.Customer != "" || order.Total != 0 || addr != "" || err != nil || order.Address.IsSealed() {
			t.Fatalf("projected item has more than seq and card: %+v (address %q, %v)", order, addr, err)
		}
	}
}

func TestQueryLimitAndPageSize(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	o.rec.take()
	got := collect(t, o.orders.Query(ctx, big, repo.Limit(25), repo.PageSize(10)))
	if !slices.Equal(seqs(got), wantSeqs(func(i int) bool { return i < 25 })) {
		t.Fatalf("items %v", seqs(got))
	}
	var sizes []int
	for _, r := range o.rec.take() {
		sizes = append(sizes, r.items)
	}
	if !slices.Equal(sizes, []int{10, 10, 5}) {
		t.Fatalf("response sizes %v, want 10, 10, 5", sizes)
	}
}

var openKey = expression.Key("status").Equal(expression.Value("open"))

func TestQueryIndex(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	got := collect(t, o.orders.Query(ctx, openKey, repo.Index("by-status"), repo.PageSize(40)))
	if !slices.Equal(seqs(got), wantSeqs(openOrder)) {
		t.Fatalf("%d items from the index, want the %d open ones in order", len(got), len(wantSeqs(openOrder)))
	}
	for _, order := range got {
		checkOrder(t, order, bigCustomer, order.Seq)
	}
}

// Filtered pages of an index: continued from DynamoDB's own keys.
func TestQueryPageIndexFilterContinuesFromDynamoDBKeys(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	cheap := repo.Filter(expression.Name("total").LessThan(expression.Value(250)))
	var paged []Order
	token := ""
	for {
		p, err := o.orders.QueryPage(ctx, openKey, token, repo.Index("by-status"), cheap, repo.Limit(20), repo.PageSize(50), repo.Descending())
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, p.Items...)
		if p.Next == "" {
			break
		}
		token = viaURL(t, p.Next)
	}
	want := wantSeqs(func(i int) bool { return openOrder(i) && i*7%500 < 250 })
	slices.Reverse(want)
	if !slices.Equal(seqs(paged), want) {
		t.Fatalf("%d items over index pages, want %d in descending order", len(paged), len(want))
	}
}

func TestBreakingAQueryLoopStopsTheRequests(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	o.rec.take()
	n := 0
	for _, err := range o.orders.Query(ctx, big, repo.PageSize(2)) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	if reads := o.rec.take(); len(reads) != 2 {
		t.Fatalf("%d requests for 3 items in pages of 2, want 2", len(reads))
	}
}

func TestBreakingAParallelScanLoopStopsTheRequests(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	o.rec.take()
	for range o.orders.Scan(ctx, repo.Segments(4), repo.PageSize(5)) {
		break
	}
	// The range waits for the requests in flight, so none can follow it.
	during := len(o.rec.take())
	if late := len(o.rec.take()); late != 0 || during > 8 {
		t.Fatalf("%d scan requests during the loop, %d after it, want at most 8 and none", during, late)
	}
}

func TestParallelScanReturnsEveryItemExactlyOnce(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	o.rec.take()
	before := o.decrypts()
	got := collect(t, o.orders.Scan(ctx, repo.Segments(4), repo.PageSize(100)))
	seen := map[orderKey]int{}
	for _, order := range got {
		seen[orderKey{order.Customer, order.Seq}]++
		checkOrder(t, order, order.Customer, order.Seq)
	}
	if len(got) != bigCount+smallCount || len(seen) != bigCount+smallCount {
		t.Fatalf("%d items, %d distinct, want %d each", len(got), len(seen), bigCount+smallCount)
	}
	reads := o.rec.take()
	segments := map[int32]int{}
	for _, r := range reads {
		segments[r.segment] += r.items
	}
	if len(segments) != 4 {
		t.Fatalf("items per segment %v, want 4 segments read", segments)
	}
	// 11 data keys (10 groups and the small customers), each decrypted
	// once for the whole scan, whichever segment meets it first.
	if d := o.decrypts() - before; d != 11 || d != distinctDataKeys(reads) {
		t.Fatalf("%d Decrypt calls, want 11: one per data key", d)
	}
	t.Logf("items per segment %v, %d pages, %d Decrypt calls", segments, len(reads), distinctDataKeys(reads))
}

func TestScanPageWalksEachSegmentWithTokens(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	seen := map[orderKey]int{}
	for seg := range 3 {
		token := ""
		for {
			p, err := o.orders.ScanPage(ctx, token, repo.Segment(seg, 3), repo.Limit(150))
			if err != nil {
				t.Fatal(err)
			}
			for _, order := range p.Items {
				seen[orderKey{order.Customer, order.Seq}]++
			}
			if p.Next == "" {
				break
			}
			token = viaURL(t, p.Next)
		}
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%v returned %d times", k, n)
		}
	}
	if len(seen) != bigCount+smallCount {
		t.Fatalf("%d items, want %d", len(seen), bigCount+smallCount)
	}
}

func TestScanFilterAndProjection(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	pending := repo.Filter(expression.Name("status").Equal(expression.Value("pending")))
	got := collect(t, o.orders.Scan(ctx, pending, repo.Project("customer", "seq", "status")))
	if len(got) != smallCount {
		t.Fatalf("%d pending orders, want %d", len(got), smallCount)
	}
	for _, order := range got {
		if order.Status != "pending" || order.Card.IsSealed() {
			t.Fatalf("item %+v", order)
		}
	}
}

func TestScanLimit(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	if got := collect(t, o.orders.Scan(ctx, repo.Limit(10))); len(got) != 10 {
		t.Fatalf("%d items with Limit(10)", len(got))
	}
}

// The segments share the limit: no segment is read twice, and only the
// items returned are opened.
func TestParallelScanSegmentsShareTheLimit(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	o.rec.take()
	before := o.decrypts()
	got := collect(t, o.orders.Scan(ctx, repo.Limit(10), repo.Segments(4)))
	if len(got) != 10 {
		t.Fatalf("%d items with Limit(10) over 4 segments", len(got))
	}
	reads := o.rec.take()
	perSegment := map[int32]int{}
	for _, r := range reads {
		perSegment[r.segment]++
	}
	if len(reads) > 4 || len(perSegment) != len(reads) {
		t.Fatalf("%d requests over segments %v, want at most one per segment", len(reads), perSegment)
	}
	if d := o.decrypts() - before; d != distinctGroups(got) {
		t.Fatalf("%d Decrypt calls, want %d: one per data key of the items returned", d, distinctGroups(got))
	}
}

// With every item sealed under a data key of its own (one Put each, and no
// encrypt cache, so one GenerateDataKey each), a parallel scan's Decrypt
// count is the number of items it opens: exactly the limit, however many
// items the segments' requests bring back.
func TestParallelScanLimitOpensOnlyTheItemsReturned(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := users(t, f)
	const stored = 40
	for i := range stored {
		u := User{PK: fmt.Sprintf("USER#%02d", i), Email: fmt.Sprintf("u%d@example.com", i), SSN: field.NewEncrypted(fmt.Sprintf("ssn-%02d", i))}
		if err := r.Put(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if g := r.Encryptor().Stats().GenerateDataKeyCalls; g != stored {
		t.Fatalf("%d GenerateDataKey calls for %d Puts, want one data key per item", g, stored)
	}
	for _, n := range []int{1, 7, 25} {
		before := r.Encryptor().Stats().DecryptCalls
		seen := map[string]bool{}
		for u, err := range r.Scan(ctx, repo.Segments(4), repo.Limit(n)) {
			if err != nil {
				t.Fatal(err)
			}
			ssn, err := u.SSN.Value()
			if err != nil || ssn != "ssn-"+strings.TrimPrefix(u.PK, "USER#") {
				t.Fatalf("%s: ssn %q, %v", u.PK, ssn, err)
			}
			if seen[u.PK] {
				t.Fatalf("Limit(%d): %s returned twice", n, u.PK)
			}
			seen[u.PK] = true
		}
		if len(seen) != n {
			t.Fatalf("Limit(%d) over 4 segments: %d items", n, len(seen))
		}
		if d := r.Encryptor().Stats().DecryptCalls - before; d != int64(n) {
			t.Fatalf("Limit(%d) over 4 segments: %d Decrypt calls, want %d: one per item returned", n, d, n)
		}
	}
}

func TestComparingAnEncryptedAttributeIsRejectedBeforeAnyRequest(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	o.rec.take()
	card := repo.Filter(expression.Name("card").Equal(expression.Value(orderCard(bigCustomer, 1))))
	byCard := expression.Key("card").Equal(expression.Value("x"))
	_, pageErr := o.orders.QueryPage(ctx, big, "", card)
	for name, err := range map[string]error{
		"query filter":        firstError(o.orders.Query(ctx, big, card)),
		"query key condition": firstError(o.orders.Query(ctx, byCard, repo.Index("by-card"))),
		"query page":          pageErr,
		"scan filter":         firstError(o.orders.Scan(ctx, repo.Filter(expression.Contains(expression.Name("address"), "addr")))),
	} {
		if !errors.Is(err, repo.ErrEncryptedComparison) {
			t.Errorf("%s: err = %v, want ErrEncryptedComparison", name, err)
		}
	}
	if reads := o.rec.take(); len(reads) != 0 {
		t.Fatalf("%d requests sent", len(reads))
	}
}

// Existence checks on an encrypted attribute compare nothing and are allowed.
func TestEncryptedAttributeExistenceCanBeFiltered(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	got := collect(t, o.orders.Query(ctx, big, repo.Filter(expression.Name("card").AttributeExists()), repo.Limit(3)))
	if len(got) != 3 {
		t.Fatalf("%d items with attribute_exists(card)", len(got))
	}
}

func TestTokensFromAnotherQueryAreRefused(t *testing.T) {
	ctx := context.Background()
	o := newOrderSet(t)
	p, err := o.orders.QueryPage(ctx, big, "", repo.Limit(5))
	if err != nil || p.Next == "" {
		t.Fatalf("page %+v, %v", p, err)
	}
	o.rec.take()
	other := expression.Key("customer").Equal(expression.Value("C#100"))
	for name, call := range map[string]func() error{
		"another customer": func() error { _, err := o.orders.QueryPage(ctx, other, p.Next); return err },
		"another order":    func() error { _, err := o.orders.QueryPage(ctx, big, p.Next, repo.Descending()); return err },
		"a scan":           func() error { _, err := o.orders.ScanPage(ctx, p.Next); return err },
		"damaged":          func() error { _, err := o.orders.QueryPage(ctx, big, p.Next[:len(p.Next)-4]); return err },
		"one bit changed":  func() error { _, err := o.orders.QueryPage(ctx, big, flipLastBit(t, p.Next)); return err },
	} {
		if err := call(); !errors.Is(err, repo.ErrInvalidToken) {
			t.Errorf("%s: err = %v, want ErrInvalidToken", name, err)
		}
	}
	if reads := o.rec.take(); len(reads) != 0 {
		t.Fatalf("%d requests sent for refused tokens", len(reads))
	}
}

func TestCancellingTheContextStopsTheIteration(t *testing.T) {
	o := newOrderSet(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	var last error
	for _, err := range o.orders.Query(ctx, big, repo.PageSize(10)) {
		if err != nil {
			last = err
			break
		}
		if n++; n == 1 {
			cancel()
		}
	}
	if n != 1 || !errors.Is(last, context.Canceled) {
		t.Fatalf("%d items, then %v; want 1 item, then context.Canceled", n, last)
	}
}

// flipLastBit changes the last bit of the bytes a token encodes: the key
// it continues from (seq 4 becomes seq 5), a change only the token's check
// can catch.
func flipLastBit(t *testing.T, token string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 1
	return base64.RawURLEncoding.EncodeToString(raw)
}

func firstError(seq func(func(Order, error) bool)) error {
	for _, err := range seq {
		if err != nil {
			return err
		}
	}
	return nil
}
