package repo_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

type Cardholder struct {
	Bank string                  `dynamodbav:"bank" repo:"hash"`
	ID   int                     `dynamodbav:"id" repo:"range"`
	Name string                  `dynamodbav:"name"`
	Card field.Encrypted[string] `dynamodbav:"card" enc:"pii"`
}

func ExampleRepo_BatchPut() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/my-app-key"})
	holders, err := repo.New[Cardholder]("cardholders", repo.WithRegistry(reg),
		repo.WithBatchConcurrency(8),                              // requests in flight per call
		repo.WithBatchBackoff(20*time.Millisecond, 2*time.Second), // before unprocessed items are retried
	)
	if err != nil {
		log.Fatal(err)
	}

	items := make([]Cardholder, 500)
	for i := range items {
		items[i] = Cardholder{Bank: "acme", ID: i, Name: fmt.Sprint("holder ", i),
			Card: field.NewEncrypted(fmt.Sprintf("4111 1111 1111 %04d", i))}
	}
	// 500 card numbers are sealed under one data key (one GenerateDataKey),
	// then written in 20 requests of 25, retrying unprocessed items.
	if err := holders.BatchPut(ctx, items); err != nil {
		log.Fatal(err)
	}
	fmt.Println(holders.Encryptor().Stats().GenerateDataKeyCalls)
}

func ExampleRepo_BatchGet() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/my-app-key"})
	holders, err := repo.New[Cardholder]("cardholders", repo.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}

	keys := []repo.Key{{Hash: "acme", Range: 7}, {Hash: "acme", Range: 3}, {Hash: "acme", Range: 9999}}
	found, err := holders.BatchGet(ctx, keys, repo.ConsistentRead())
	if err != nil {
		log.Fatal(err)
	}
	// In the order of keys; 9999 has no item and is simply absent.
	for _, h := range found {
		card, err := h.Card.Value()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(h.ID, card)
	}
}

func ExampleRepo_BatchDelete() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/my-app-key"})
	holders, err := repo.New[Cardholder]("cardholders", repo.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}

	var keys []repo.Key
	for i := range 500 {
		keys = append(keys, repo.Key{Hash: "acme", Range: i})
	}
	if err := holders.BatchDelete(ctx, keys); err != nil {
		log.Fatal(err)
	}
}

func ExampleBatchError() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/my-app-key"})
	holders, err := repo.New[Cardholder]("cardholders", repo.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}

	var items []Cardholder // ...
	err = holders.BatchPut(ctx, items)
	var batchErr *repo.BatchError
	switch {
	case errors.As(err, &batchErr):
		// Everything else was written. Puts are idempotent: sending these
		// again (now or from a queue) is safe.
		log.Printf("%d of %d not written (%v); retry keys %v",
			len(batchErr.Unprocessed), batchErr.Total, batchErr.Err, batchErr.Unprocessed)
	case errors.Is(err, repo.ErrDuplicateKey), errors.Is(err, repo.ErrItemTooLarge):
		log.Fatal(err) // rejected before anything was sent
	case err != nil:
		log.Fatal(err) // e.g. sealing failed: nothing was written
	}
}
