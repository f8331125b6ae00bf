package repo_test

import (
	"context"
	"fmt"
	"log"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/repo"
)

// Rotate the key of a table's SSNs and move them to version 2, while the
// service keeps running: readers accept the old key meanwhile, and the run
// can resume from its last checkpoint.
func ExampleRepo_Migrate() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{
		KeyID:          "arn:aws:kms:us-east-1:111122223333:key/new-key-id",
		PreviousKeyIDs: []string{"arn:aws:kms:us-east-1:111122223333:key/old-key-id"},
		Version:        enc.Version2,
	})
	customers, err := repo.New[Customer]("customers", repo.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
	checkpoint := loadCheckpoint() // "" on the first run
	st, err := customers.Migrate(ctx,
		repo.MigrateFrom(checkpoint),
		repo.MigrateItemsPerSecond(200),
		repo.MigrateProgress(func(s repo.MigrateStats) {
			saveCheckpoint(s.Next)
			fmt.Printf("scanned %d, changed %d, KMS calls %d\n", s.Scanned, s.Changed, s.KMSCalls)
		}))
	if err != nil {
		log.Fatal(err) // resume later from the saved checkpoint
	}
	fmt.Printf("done: %d items changed, %d already current\n", st.Changed, st.Skipped)
	// Once a run changes nothing: drop PreviousKeyIDs, and set
	// RequireSealed and MinVersion: 2.
}

func loadCheckpoint() string { return "" }
func saveCheckpoint(string)  {}

// Fail at start-up, not on the first request, when a key is missing,
// disabled or not allowed for the service's role.
func ExampleRepo_CheckKeys() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "arn:aws:kms:us-east-1:111122223333:key/key-id"})
	customers, err := repo.New[Customer]("customers", repo.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
	if err := customers.CheckKeys(ctx, nil); err != nil {
		log.Fatalf("KMS keys not usable: %v", err) // one KMS call per spec
	}
}
