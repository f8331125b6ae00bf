package repo_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

// Wallet and Transfer are the item types of the transaction examples.
type Wallet struct {
	PK      string                  `dynamodbav:"pk" repo:"hash"`
	Balance int64                   `dynamodbav:"balance"`
	IBAN    field.Encrypted[string] `dynamodbav:"iban" enc:"pii"`
	Version int64                   `dynamodbav:"version" repo:"version"`
}

type Transfer struct {
	PK   string                  `dynamodbav:"pk" repo:"hash"`
	SK   string                  `dynamodbav:"sk" repo:"range"`
	Memo field.Encrypted[string] `dynamodbav:"memo" enc:"pii"`
}

// Move money between two wallets and record the transfer, all or nothing.
// The memo is sealed before the request; a wallet changed since it was read
// cancels the whole transaction.
func ExampleTransact() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/my-app-key"})
	wallets, err := repo.New[Wallet]("wallets", repo.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
	transfers, err := repo.New[Transfer]("transfers", repo.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
	from, err := wallets.Get(ctx, repo.Key{Hash: "W#1"}, repo.ConsistentRead())
	if err != nil {
		log.Fatal(err)
	}

	err = repo.Transact(ctx,
		repo.TxToken("transfer-2026-12-02-0007"), // safe to send again after a timeout
		wallets.TxUpdate(repo.Key{Hash: "W#1"}, repo.NewUpdate().Add("balance", -50), repo.IfVersion(from.Version),
			repo.If(expression.Name("balance").GreaterThanEqual(expression.Value(50)))),
		wallets.TxUpdate(repo.Key{Hash: "W#2"}, repo.NewUpdate().Add("balance", 50), repo.IfExists()),
		transfers.TxPut(Transfer{PK: "W#1", SK: "0007", Memo: field.NewEncrypted("rent, December")}, repo.IfNotExists()),
	)
	var tce *repo.TxCanceledError
	switch {
	case errors.Is(err, repo.ErrVersionConflict):
		fmt.Println("wallet changed since it was read: read it again and retry")
	case errors.As(err, &tce):
		for i, r := range tce.Reasons {
			if r.Code != repo.TxReasonNone {
				fmt.Printf("operation %d on %s %v: %s\n", i, r.Table, r.Key, r.Code)
			}
		}
	case err != nil:
		log.Fatal(err)
	}
}

// Read two wallets and a transfer as one snapshot; the encrypted fields of
// all three are opened with one Decrypt per distinct data key.
func ExampleTransactGet() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/my-app-key"})
	wallets, err := repo.New[Wallet]("wallets", repo.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
	transfers, err := repo.New[Transfer]("transfers", repo.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}

	var from, to Wallet
	var t Transfer
	err = repo.TransactGet(ctx,
		wallets.TxGet(repo.Key{Hash: "W#1"}, &from),
		wallets.TxGet(repo.Key{Hash: "W#2"}, &to),
		transfers.TxGet(repo.Key{Hash: "W#1", Range: "0007"}, &t))
	if errors.Is(err, repo.ErrNotFound) {
		fmt.Println("not all there:", err)
	} else if err != nil {
		log.Fatal(err)
	}
	memo, _ := t.Memo.Value()
	fmt.Println(from.Balance, to.Balance, memo)
}

// Increase a counter under optimistic locking: read, change, write, and
// start again when someone else wrote in between.
func ExampleIfVersion() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/my-app-key"})
	wallets, err := repo.New[Wallet]("wallets", repo.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
	k := repo.Key{Hash: "W#1"}
	for {
		w, err := wallets.Get(ctx, k, repo.ConsistentRead())
		if err != nil {
			log.Fatal(err)
		}
		w.Balance += 10
		err = wallets.Put(ctx, w) // requires the stored version to be w.Version, stores w.Version+1
		if errors.Is(err, repo.ErrVersionConflict) {
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		break
	}
	// Update and Delete do not read the item: they take the version expected.
	if err := wallets.Delete(ctx, k, repo.IfVersion(7)); errors.Is(err, repo.ErrVersionConflict) {
		fmt.Println("not deleted: the wallet is no longer at version 7")
	}
}
