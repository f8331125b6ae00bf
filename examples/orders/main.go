// Orders stores customers' orders with encrypted card numbers and reads them
// back the ways a shop does: a customer's latest orders, a paged order list
// with continuation tokens, open orders through a secondary index, and a
// parallel scan for revenue. It prints what each read cost in KMS calls.
//
// It needs DynamoDB and KMS endpoints and credentials from the standard AWS
// configuration, e.g.
//
//	scripts/with-services.sh moto -- go run ./examples/orders
//
// It creates its own KMS key, alias and table, and deletes the table at the end.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

type Order struct {
	Customer string                  `dynamodbav:"customer" repo:"hash"`
	Number   int                     `dynamodbav:"number" repo:"range,gsi:by-status:range"`
	Status   string                  `dynamodbav:"status" repo:"gsi:by-status:hash"`
	Cents    int                     `dynamodbav:"cents"`
	Card     field.Encrypted[string] `dynamodbav:"card" enc:"pii"`
}

const (
	customers         = 5
	ordersPerCustomer = 40
)

func main() {
	if err := run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return err
	}
	run := time.Now().UnixNano()
	alias := fmt.Sprintf("alias/orders-example-%d", run)
	if err := createKey(ctx, kms.NewFromConfig(cfg), alias); err != nil {
		return err
	}
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: alias})

	db := dynamodb.NewFromConfig(cfg)
	orders, err := repo.New[Order](fmt.Sprintf("orders-%d", run), repo.WithClient(db), repo.WithRegistry(reg))
	if err != nil {
		return err
	}
	// The table and its by-status index come from Order's tags.
	if err := orders.CreateTable(ctx); err != nil {
		return err
	}
	defer func() {
		if err := orders.DeleteTable(ctx); err != nil {
			log.Printf("delete table: %v", err)
		}
	}()

	if err := seed(ctx, orders); err != nil {
		return err
	}
	kmsCalls := spent(orders)
	fmt.Printf("seeded %d orders with one BatchPut (%s)\n\n", customers*ordersPerCustomer, kmsCalls())

	if err := latest(ctx, orders); err != nil {
		return err
	}
	fmt.Printf("  %s\n\n", kmsCalls())
	if err := pages(ctx, orders); err != nil {
		return err
	}
	fmt.Printf("  %s\n\n", kmsCalls())
	if err := openOrders(ctx, orders); err != nil {
		return err
	}
	fmt.Printf("  %s\n\n", kmsCalls())
	if err := revenue(ctx, orders); err != nil {
		return err
	}
	fmt.Printf("  %s\n\n", kmsCalls())
	return guarded(ctx, orders)
}

// seed writes all orders in one BatchPut, so they share one data key and a
// page of them costs one Decrypt, however many orders it holds.
func seed(ctx context.Context, orders *repo.Repo[Order]) error {
	rnd := rand.New(rand.NewPCG(1, 2))
	statuses := []string{"shipped", "shipped", "shipped", "open", "cancelled"}
	var all []Order
	for c := 1; c <= customers; c++ {
		for n := 1; n <= ordersPerCustomer; n++ {
			all = append(all, Order{
				Customer: fmt.Sprintf("CUST#%d", c),
				Number:   n,
				Status:   statuses[rnd.IntN(len(statuses))],
				Cents:    500 + rnd.IntN(25000),
				Card:     field.NewEncrypted(fmt.Sprintf("4111 1111 1111 %04d", rnd.IntN(10000))),
			})
		}
	}
	return orders.BatchPut(ctx, all)
}

// latest prints a customer's five most recent orders: one request, five items.
func latest(ctx context.Context, orders *repo.Repo[Order]) error {
	fmt.Println("latest orders of CUST#2:")
	customer := expression.Key("customer").Equal(expression.Value("CUST#2"))
	for o, err := range orders.Query(ctx, customer, repo.Descending(), repo.Limit(5)) {
		if err != nil {
			return err
		}
		card, err := o.Card.Value()
		if err != nil {
			return err
		}
		fmt.Printf("  #%-3d %-9s %8s  card …%s\n", o.Number, o.Status, money(o.Cents), card[len(card)-4:])
	}
	return nil
}

// pages lists a customer's orders 15 at a time, passing the token back as a
// web client would.
func pages(ctx context.Context, orders *repo.Repo[Order]) error {
	fmt.Println("CUST#3's orders, 15 per page:")
	customer := expression.Key("customer").Equal(expression.Value("CUST#3"))
	token := ""
	for n := 1; ; n++ {
		page, err := orders.QueryPage(ctx, customer, token, repo.Limit(15))
		if err != nil {
			return err
		}
		first, last := page.Items[0].Number, page.Items[len(page.Items)-1].Number
		next := "none, last page"
		if page.Next != "" {
			next = fmt.Sprintf("%d URL-safe characters", len(page.Next))
		}
		fmt.Printf("  page %d: orders #%d..#%d, next token: %s\n", n, first, last, next)
		if page.Next == "" {
			return nil
		}
		token = page.Next
	}
}

// openOrders reads the index: every customer's open orders over 100.00.
func openOrders(ctx context.Context, orders *repo.Repo[Order]) error {
	open := expression.Key("status").Equal(expression.Value("open"))
	big := repo.Filter(expression.Name("cents").GreaterThanEqual(expression.Value(10000)))
	count, sum := 0, 0
	for o, err := range orders.Query(ctx, open, repo.Index("by-status"), big, repo.PageSize(25)) {
		if err != nil {
			return err
		}
		count++
		sum += o.Cents
	}
	fmt.Printf("open orders over 100.00, from the by-status index: %d, worth %s\n", count, money(sum))
	return nil
}

// revenue scans the table in four parallel segments, reading only two
// attributes, so no encrypted value is read or opened.
func revenue(ctx context.Context, orders *repo.Repo[Order]) error {
	byStatus := map[string]int{}
	for o, err := range orders.Scan(ctx, repo.Segments(4), repo.Project("status", "cents")) {
		if err != nil {
			return err
		}
		byStatus[o.Status] += o.Cents
	}
	fmt.Printf("revenue by status (parallel scan): shipped %s, open %s, cancelled %s\n",
		money(byStatus["shipped"]), money(byStatus["open"]), money(byStatus["cancelled"]))
	return nil
}

// guarded shows that an encrypted attribute cannot be compared: sealed values
// are randomised, so such a filter could never match.
func guarded(ctx context.Context, orders *repo.Repo[Order]) error {
	byCard := repo.Filter(expression.Name("card").Equal(expression.Value("4111 1111 1111 0042")))
	for _, err := range orders.Scan(ctx, byCard) {
		if errors.Is(err, repo.ErrEncryptedComparison) {
			fmt.Println("filter on the encrypted card refused before any request:")
			fmt.Println(" ", err)
			return nil
		}
		return fmt.Errorf("filter on an encrypted attribute was not refused: %v", err)
	}
	return errors.New("filter on an encrypted attribute was not refused")
}

// spent returns a function that describes the KMS calls made since it last ran.
func spent(orders *repo.Repo[Order]) func() string {
	var last enc.Stats
	return func() string {
		now := orders.Encryptor().Stats()
		s := fmt.Sprintf("KMS: %d GenerateDataKey, %d Decrypt",
			now.GenerateDataKeyCalls-last.GenerateDataKeyCalls, now.DecryptCalls-last.DecryptCalls)
		last = now
		return s
	}
}

func money(cents int) string { return fmt.Sprintf("%d.%02d", cents/100, cents%100) }

func createKey(ctx context.Context, c *kms.Client, alias string) error {
	key, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("dynoseal orders example")})
	if err != nil {
		return fmt.Errorf("create KMS key: %w", err)
	}
	_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: key.KeyMetadata.KeyId})
	if err != nil {
		return fmt.Errorf("create alias: %w", err)
	}
	return nil
}
