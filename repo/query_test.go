package repo_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/repo"
)

var keyA = expression.Key("pk").Equal(expression.Value("A"))

// newFakeRepo returns an Account repository over a fakeDB holding n items
// sealed in groups of group (see accountItems).
func newFakeRepo(tb testing.TB, n, group int) (*repo.Repo[Account], *fakeDB) {
	tb.Helper()
	f := &fakeDB{}
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	r, err := repo.New[Account]("accounts", repo.WithRegistry(reg), repo.WithEncryptor(enc.New(enctest.New())), repo.WithClient(f))
	if err != nil {
		tb.Fatal(err)
	}
	f.items = accountItems(tb, r, n, group)
	return r, f
}

// checkAccount checks that a is item i with its encrypted fields opened.
func checkAccount(t *testing.T, a Account, i int) {
	t.Helper()
	ssn, err := a.SSN.Value()
	if err != nil {
		t.Fatalf("item %d: ssn: %v", i, err)
	}
	card, err := a.Card.Value()
	if err != nil {
		t.Fatalf("item %d: card: %v", i, err)
	}
	if a.SK != i || ssn != fmt.Sprintf("ssn-%d", i) || card != fmt.Sprintf("card-%d", i) {
		t.Fatalf("got sk %d ssn %q card %q, want item %d", a.SK, ssn, card, i)
	}
}

func limits[In any](ins []In, limit func(In) *int32) []int {
	var out []int
	for _, in := range ins {
		out = append(out, int(aws.ToInt32(limit(in))))
	}
	return out
}

func queryLimits(f *fakeDB) []int {
	return limits(f.queries, func(in dynamodb.QueryInput) *int32 { return in.Limit })
}

func TestQueryPagesLazilyAndStopsWhenTheLoopBreaks(t *testing.T) {
	ctx := context.Background()
	r, f := newFakeRepo(t, 100, 10)
	seq := r.Query(ctx, keyA, repo.PageSize(10))
	if f.calls() != 0 {
		t.Fatal("Query sent a request before the range started")
	}
	i := 0
	for a, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		checkAccount(t, a, i)
		i++
		if i == 15 {
			break
		}
	}
	if n := f.calls(); n != 2 {
		t.Fatalf("%d requests for 15 items in pages of 10, want 2", n)
	}
	if st := r.Encryptor().Stats(); st.DecryptCalls != 2 {
		t.Fatalf("%d Decrypt calls for two pages under one data key each, want 2", st.DecryptCalls)
	}
}

func TestQueryReturnsEveryItemInOrderWithOneDecryptPerDataKey(t *testing.T) {
	ctx := context.Background()
	r, f := newFakeRepo(t, 100, 10)
	i := 0
	// Pages of 15 straddle the groups of 10: pages touch 2, 2, 2, ... groups,
	// 13 in all, but each group's data key is decrypted once per iteration.
	for a, err := range r.Query(ctx, keyA, repo.PageSize(15)) {
		if err != nil {
			t.Fatal(err)
		}
		checkAccount(t, a, i)
		i++
	}
	if i != 100 {
		t.Fatalf("%d items, want 100", i)
	}
	if st := r.Encryptor().Stats(); st.DecryptCalls != 10 || st.CacheHits != 3 {
		t.Fatalf("%d Decrypt calls and %d memo hits, want 10 and 3 (one Decrypt per data key)", st.DecryptCalls, st.CacheHits)
	}
	if n := f.calls(); n != 7 {
		t.Fatalf("%d requests, want 7", n)
	}
	if in := f.queries[0]; aws.ToString(in.TableName) != "accounts" || in.KeyConditionExpression == nil || !aws.ToBool(in.ScanIndexForward) || in.IndexName != nil {
		t.Fatalf("request %+v", in)
	}
}

// A data key decrypted for one page is reused by the later pages of the
// same iteration, not by another iteration.
func TestIterationsRememberDataKeysAcrossPages(t *testing.T) {
	ctx := context.Background()
	for name, read := range map[string]func(r *repo.Repo[Account]) func(func(Account, error) bool){
		"query": func(r *repo.Repo[Account]) func(func(Account, error) bool) {
			return r.Query(ctx, keyA, repo.PageSize(10))
		},
		"scan": func(r *repo.Repo[Account]) func(func(Account, error) bool) { return r.Scan(ctx, repo.PageSize(10)) },
		"parallel scan": func(r *repo.Repo[Account]) func(func(Account, error) bool) {
			return r.Scan(ctx, repo.Segments(4), repo.PageSize(5))
		},
	} {
		t.Run(name, func(t *testing.T) {
			r, f := newFakeRepo(t, 100, 100) // one data key for all
			seq := read(r)
			n := 0
			for a, err := range seq {
				if err != nil {
					t.Fatal(err)
				}
				checkAccount(t, a, a.SK)
				n++
			}
			if n != 100 || f.calls() < 10 {
				t.Fatalf("%d items in %d requests", n, f.calls())
			}
			if st := r.Encryptor().Stats(); st.DecryptCalls != 1 {
				t.Fatalf("%d Decrypt calls over %d pages under one data key, want 1", st.DecryptCalls, f.calls())
			}
			// Each range is its own iteration, with its own memo.
			for _, err := range seq {
				if err != nil {
					t.Fatal(err)
				}
				break
			}
			if st := r.Encryptor().Stats(); st.DecryptCalls != 2 {
				t.Fatalf("%d Decrypt calls after a second range, want 2", st.DecryptCalls)
			}
		})
	}
}

func TestQueryLimitCapsItemsAndPageSizeSizesRequests(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name       string
		opts       []repo.ReadOption
		filterEven bool
		want       []int // sk of the items
		limits     []int // DynamoDB Limit of each request; 0: none
	}{
		{"limit over page size", []repo.ReadOption{repo.Limit(25), repo.PageSize(10)}, false, seqInts(0, 25, 1), []int{10, 10, 5}},
		{"limit alone asks for no more", []repo.ReadOption{repo.Limit(5)}, false, seqInts(0, 5, 1), []int{5}},
		{"descending", []repo.ReadOption{repo.Limit(3), repo.Descending()}, false, []int{99, 98, 97}, []int{3}},
		// DynamoDB's Limit counts before the filter: shrinking it to the
		// items still wanted would only add requests.
		{"filter keeps page size", []repo.ReadOption{repo.Limit(7), repo.PageSize(10)}, true, seqInts(0, 14, 2), []int{10, 10}},
		{"filter without page size", []repo.ReadOption{repo.Limit(7)}, true, seqInts(0, 14, 2), []int{0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, f := newFakeRepo(t, 100, 100)
			opts := c.opts
			if c.filterEven {
				f.match = func(it map[string]types.AttributeValue) bool { return sk(it)%2 == 0 }
				opts = append(opts, repo.Filter(expression.Name("name").BeginsWith("n")))
			}
			var got []int
			for a, err := range r.Query(ctx, keyA, opts...) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, a.SK)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("items %v, want %v", got, c.want)
			}
			if l := queryLimits(f); fmt.Sprint(l) != fmt.Sprint(c.limits) {
				t.Fatalf("request limits %v, want %v", l, c.limits)
			}
		})
	}
}

func seqInts(from, to, step int) []int {
	var out []int
	for i := from; i < to; i += step {
		out = append(out, i)
	}
	return out
}

// pageAll reads every page through tokens that go through a URL and back.
func pageAll(t *testing.T, read func(token string) (repo.Page[Account], error)) (items []int, pages int) {
	t.Helper()
	token := ""
	for {
		p, err := read(token)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, a := range p.Items {
			items = append(items, a.SK)
		}
		if p.Next == "" {
			return items, pages
		}
		if url.QueryEscape(p.Next) != p.Next {
			t.Fatalf("token %q is not URL-safe", p.Next)
		}
		u, err := url.Parse("https://example.com/orders?page=" + p.Next)
		if err != nil {
			t.Fatal(err)
		}
		token = u.Query().Get("page")
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
	}
}

func TestQueryPageTokensRoundTrip(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name       string
		opts       []repo.ReadOption
		filterEven bool
		maxPage    int
		want       []int
		pages      int
		// check the request limits of a run
		limits func(t *testing.T, l []int)
	}{
		{name: "limit", opts: []repo.ReadOption{repo.Limit(7)}, want: seqInts(0, 100, 1), pages: 15},
		{name: "descending", opts: []repo.ReadOption{repo.Limit(30), repo.Descending()}, want: reversed(seqInts(0, 100, 1)), pages: 4},
		{name: "one request per page", opts: []repo.ReadOption{repo.PageSize(40)}, want: seqInts(0, 100, 1), pages: 3},
		{name: "1 MB pages", maxPage: 33, want: seqInts(0, 100, 1), pages: 4},
		{
			// A filtered page of the table may overshoot and is cut at the
			// last item kept; the token continues from that item's key.
			name: "filtered table pages are cut at an item", opts: []repo.ReadOption{repo.Limit(7), repo.PageSize(20)},
			filterEven: true, want: seqInts(0, 100, 2), pages: 8,
			limits: func(t *testing.T, l []int) {
				for _, n := range l {
					if n != 20 {
						t.Fatalf("request limits %v, want 20 each", l)
					}
				}
			},
		},
		{
			// An index's key attributes are unknown, so its filtered pages
			// never ask for more items than they still want.
			name: "filtered index pages never overshoot", opts: []repo.ReadOption{repo.Limit(7), repo.PageSize(20), repo.Index("by-name")},
			filterEven: true, want: seqInts(0, 100, 2), pages: 8,
			limits: func(t *testing.T, l []int) {
				if l[0] != 7 || l[1] != 3 {
					t.Fatalf("request limits %v, want 7, 3, ...", l)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, f := newFakeRepo(t, 100, 10)
			f.maxPage = c.maxPage
			opts := c.opts
			if c.filterEven {
				f.match = func(it map[string]types.AttributeValue) bool { return sk(it)%2 == 0 }
				opts = append(opts, repo.Filter(expression.Name("name").BeginsWith("n")))
			}
			got, pages := pageAll(t, func(token string) (repo.Page[Account], error) {
				return r.QueryPage(ctx, keyA, token, opts...)
			})
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("items %v\nwant %v", got, c.want)
			}
			if pages != c.pages {
				t.Fatalf("%d pages, want %d", pages, c.pages)
			}
			if c.limits != nil {
				c.limits(t, queryLimits(f))
			}
		})
	}
}

func reversed(s []int) []int {
	out := make([]int, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

func TestQueryPageOpensThePageWithOneDecryptPerDataKey(t *testing.T) {
	r, _ := newFakeRepo(t, 100, 20)
	p, err := r.QueryPage(context.Background(), keyA, "", repo.Limit(30), repo.PageSize(7))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 30 {
		t.Fatalf("%d items, want 30", len(p.Items))
	}
	for i, a := range p.Items {
		checkAccount(t, a, i)
	}
	// Five requests, but one page: the items of two data keys are opened together.
	if st := r.Encryptor().Stats(); st.DecryptCalls != 2 {
		t.Fatalf("%d Decrypt calls, want 2", st.DecryptCalls)
	}
}

func TestQueryPageProjectsKeysOnlyWhenAPageCanBeCut(t *testing.T) {
	ctx := context.Background()
	r, f := newFakeRepo(t, 20, 20)
	f.match = func(map[string]types.AttributeValue) bool { return true }
	filter := repo.Filter(expression.Name("name").BeginsWith("n"))
	p, err := r.QueryPage(ctx, keyA, "", repo.Project("card"), filter, repo.Limit(3))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 3 || p.Items[2].SK != 2 || p.Next == "" {
		t.Fatalf("page %+v", p)
	}
	if c, _ := p.Items[0].Card.Value(); c != "card-0" || p.Items[0].Name != "" {
		t.Fatalf("projected item %+v", p.Items[0])
	}
	next, err := r.QueryPage(ctx, keyA, p.Next, repo.Project("card"), filter, repo.Limit(3))
	if err != nil || next.Items[0].SK != 3 {
		t.Fatalf("next page %+v, %v", next, err)
	}
	for a, err := range r.Query(ctx, keyA, repo.Project("card"), filter, repo.Limit(3)) {
		if err != nil {
			t.Fatal(err)
		}
		if a.SK != 0 || a.PK != "" {
			t.Fatalf("Query added keys to the projection: %+v", a)
		}
	}
}

func TestPageTokensFromElsewhereAreRefusedBeforeAnyRequest(t *testing.T) {
	ctx := context.Background()
	r, f := newFakeRepo(t, 20, 20)
	p, err := r.QueryPage(ctx, keyA, "", repo.Limit(5))
	if err != nil || p.Next == "" {
		t.Fatalf("first page %+v, %v", p, err)
	}
	scanned, err := r.ScanPage(ctx, "", repo.Limit(5))
	if err != nil || scanned.Next == "" {
		t.Fatalf("scan page %+v, %v", scanned, err)
	}
	other := expression.Key("pk").Equal(expression.Value("B"))
	before := f.calls()
	bad := []struct {
		name  string
		token string
		key   expression.KeyConditionBuilder
		opts  []repo.ReadOption
	}{
		{"not base64", "%%%", keyA, nil},
		{"padded base64", p.Next + "=", keyA, nil},
		{"truncated", p.Next[:len(p.Next)-3], keyA, nil},
		{"another key condition", p.Next, other, nil},
		{"another order", p.Next, keyA, []repo.ReadOption{repo.Descending()}},
		{"another index", p.Next, keyA, []repo.ReadOption{repo.Index("by-name")}},
		{"a scan's token", scanned.Next, keyA, nil},
	}
	for _, c := range bad {
		_, err := r.QueryPage(ctx, c.key, c.token, append(c.opts, repo.Limit(5))...)
		if !errors.Is(err, repo.ErrInvalidToken) {
			t.Errorf("%s: err = %v, want ErrInvalidToken", c.name, err)
		} else if !strings.Contains(err.Error(), "accounts") {
			t.Errorf("%s: error %q does not name the table", c.name, err)
		}
	}
	if _, err := r.ScanPage(ctx, p.Next); !errors.Is(err, repo.ErrInvalidToken) {
		t.Errorf("scan took a query's token: %v", err)
	}
	if _, err := r.ScanPage(ctx, scanned.Next, repo.Segment(0, 2)); !errors.Is(err, repo.ErrInvalidToken) {
		t.Errorf("a segment took the whole scan's token: %v", err)
	}
	if f.calls() != before {
		t.Fatalf("%d requests sent for refused tokens", f.calls()-before)
	}
	// The same query with another filter, projection or limit continues.
	if _, err := r.QueryPage(ctx, keyA, p.Next, repo.Limit(2), repo.Project("sk")); err != nil {
		t.Fatalf("same query refused its token: %v", err)
	}
}

func TestReadsRejectEncryptedComparisonsBeforeAnyRequest(t *testing.T) {
	ctx := context.Background()
	r, f := newFakeRepo(t, 10, 10)
	onSSN := expression.Key("ssn").Equal(expression.Value("123"))
	compare := repo.Filter(expression.Name("card").Equal(expression.Value("4111")))
	for name, err := range map[string]error{
		"query key condition": firstErr(r.Query(ctx, onSSN, repo.Index("by-ssn"))),
		"query filter":        firstErr(r.Query(ctx, keyA, compare)),
		"scan filter":         firstErr(r.Scan(ctx, compare)),
		"parallel scan":       firstErr(r.Scan(ctx, compare, repo.Segments(4))),
		"query page":          pageErr(r.QueryPage(ctx, keyA, "", compare)),
		"scan page":           pageErr(r.ScanPage(ctx, "", compare)),
	} {
		if !errors.Is(err, repo.ErrEncryptedComparison) {
			t.Errorf("%s: err = %v, want ErrEncryptedComparison", name, err)
		}
	}
	if f.calls() != 0 {
		t.Fatalf("%d requests sent", f.calls())
	}
	f.match = func(map[string]types.AttributeValue) bool { return true }
	if err := firstErr(r.Query(ctx, keyA, repo.Filter(expression.Name("card").AttributeExists()))); err != nil {
		t.Fatalf("existence check rejected: %v", err)
	}
}

func firstErr[T any](seq func(func(T, error) bool)) error {
	for _, err := range seq {
		if err != nil {
			return err
		}
	}
	return nil
}

func pageErr[T any](_ repo.Page[T], err error) error { return err }

func TestReadsRejectOptionsTheyDoNotTake(t *testing.T) {
	ctx := context.Background()
	r, f := newFakeRepo(t, 10, 10)
	for name, err := range map[string]error{
		"query segments":         firstErr(r.Query(ctx, keyA, repo.Segments(2))),
		"scan order":             firstErr(r.Scan(ctx, repo.Descending())),
		"unset key condition":    firstErr(r.Query(ctx, expression.KeyConditionBuilder{})),
		"segment out of range":   firstErr(r.Scan(ctx, repo.Segment(3, 3))),
		"scan page of segments":  pageErr(r.ScanPage(ctx, "", repo.Segments(3))),
		"page size beyond int32": pageErr(r.QueryPage(ctx, keyA, "", repo.PageSize(1<<31))),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if f.calls() != 0 {
		t.Fatalf("%d requests sent", f.calls())
	}
}

func TestQueryStopsWithTheContextError(t *testing.T) {
	r, f := newFakeRepo(t, 30, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errs []error
	n := 0
	for _, err := range r.Query(ctx, keyA, repo.PageSize(10)) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n++
		if n == 3 {
			cancel()
		}
	}
	if n != 3 || len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
		t.Fatalf("%d items then %v, want 3 items then one context.Canceled", n, errs)
	}
	if f.calls() != 1 {
		t.Fatalf("%d requests, want 1", f.calls())
	}
	if _, err := r.QueryPage(ctx, keyA, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("QueryPage on an ended context: %v", err)
	}
}

func TestQueryErrorsNameTheTableAndWrapTheCause(t *testing.T) {
	boom := errors.New("boom")
	r, f := newFakeRepo(t, 10, 10)
	f.fail = func(context.Context, int) error { return boom }
	err := firstErr(r.Query(context.Background(), keyA))
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "accounts") || !strings.Contains(err.Error(), "query") {
		t.Fatalf("err = %v", err)
	}
	_, err = r.ScanPage(context.Background(), "", repo.Segment(1, 2))
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "segment 1 of 2") {
		t.Fatalf("err = %v", err)
	}
}

func TestQueryTakesIndexConsistentReadAndProjection(t *testing.T) {
	r, f := newFakeRepo(t, 10, 10)
	for _, err := range r.Query(context.Background(), keyA, repo.Index("by-name"), repo.ConsistentRead(), repo.Project("sk", "ssn")) {
		if err != nil {
			t.Fatal(err)
		}
	}
	in := f.queries[0]
	if aws.ToString(in.IndexName) != "by-name" || !aws.ToBool(in.ConsistentRead) || in.ProjectionExpression == nil {
		t.Fatalf("request %+v", in)
	}
	var projected []string
	for _, ph := range strings.Split(*in.ProjectionExpression, ", ") {
		projected = append(projected, in.ExpressionAttributeNames[ph])
	}
	if strings.Join(projected, ",") != "sk,ssn" {
		t.Fatalf("projected %v", projected)
	}
	// The filter, key condition and projection share one set of placeholders.
	if !strings.Contains(aws.ToString(in.KeyConditionExpression), "#") || len(in.ExpressionAttributeValues) != 1 {
		t.Fatalf("key condition %q values %v", aws.ToString(in.KeyConditionExpression), in.ExpressionAttributeValues)
	}
}
