package repo_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"

	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

type Purchase struct {
	Customer string                  `dynamodbav:"customer" repo:"hash"`
	Seq      int                     `dynamodbav:"seq" repo:"range"`
	Status   string                  `dynamodbav:"status"`
	Total    int                     `dynamodbav:"total"`
	Card     field.Encrypted[string] `dynamodbav:"card" enc:"pii"`
}

// The examples below need DynamoDB and KMS, so they are compiled but not run;
// examples/orders runs the same calls against local emulators.
var purchases *repo.Repo[Purchase]

// Query returns a lazy sequence: pages are requested as the loop needs them.
func ExampleRepo_Query() {
	ctx := context.Background()
	latest := purchases.Query(ctx,
		expression.Key("customer").Equal(expression.Value("C#1")),
		repo.Descending(), repo.Limit(10))
	for o, err := range latest {
		if err != nil {
			log.Fatal(err)
		}
		card, err := o.Card.Value() // opened: one Decrypt per data key per page
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(o.Seq, o.Total, card[len(card)-4:])
	}
}

// A key condition on the sort key, a filter and a secondary index.
func ExampleRepo_Query_index() {
	ctx := context.Background()
	open := expression.Key("status").Equal(expression.Value("open")).
		And(expression.Key("seq").Between(expression.Value(100), expression.Value(199)))
	big := repo.Filter(expression.Name("total").GreaterThanEqual(expression.Value(500)))
	for o, err := range purchases.Query(ctx, open, repo.Index("by-status"), big, repo.PageSize(100)) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(o.Customer, o.Seq)
	}
}

// QueryPage serves a paged list: the token goes to the client and comes back
// with the next request.
func ExampleRepo_QueryPage() {
	http.HandleFunc("GET /customers/{id}/orders", func(w http.ResponseWriter, req *http.Request) {
		key := expression.Key("customer").Equal(expression.Value(req.PathValue("id")))
		page, err := purchases.QueryPage(req.Context(), key, req.URL.Query().Get("after"), repo.Limit(20))
		switch {
		case errors.Is(err, repo.ErrInvalidToken):
			http.Error(w, "bad page token", http.StatusBadRequest)
			return
		case err != nil:
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		for _, o := range page.Items {
			fmt.Fprintln(w, o.Seq, o.Status, o.Total)
		}
		if page.Next != "" {
			fmt.Fprintf(w, "next: /customers/%s/orders?after=%s\n", req.PathValue("id"), page.Next)
		}
	})
}

// Scan with Segments reads the table in parallel and yields every item once.
func ExampleRepo_Scan() {
	ctx := context.Background()
	revenue := 0
	shipped := repo.Filter(expression.Name("status").Equal(expression.Value("shipped")))
	for o, err := range purchases.Scan(ctx, shipped, repo.Project("total"), repo.Segments(8)) {
		if err != nil {
			log.Fatal(err)
		}
		revenue += o.Total
	}
	fmt.Println("revenue:", revenue)
}

// ScanPage with Segment lets each of several workers page through its own
// part of the table, e.g. one batch job per segment.
func ExampleRepo_ScanPage() {
	ctx := context.Background()
	const workers = 4
	for w := range workers {
		token := ""
		for {
			page, err := purchases.ScanPage(ctx, token, repo.Segment(w, workers), repo.Limit(500))
			if err != nil {
				log.Fatal(err)
			}
			fmt.Println("worker", w, "got", len(page.Items), "orders")
			if page.Next == "" {
				break
			}
			token = page.Next // store it to resume after a restart
		}
	}
}

// QueryCount counts without reading the items: no KMS call, whatever they hold.
func ExampleRepo_QueryCount() {
	ctx := context.Background()
	open := repo.Filter(expression.Name("status").Equal(expression.Value("open")))
	n, err := purchases.QueryCount(ctx, expression.Key("customer").Equal(expression.Value("C#1")), open)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "open purchases")
}
