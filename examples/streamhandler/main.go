// Streamhandler is a Lambda-style handler for a DynamoDB stream of users
// with encrypted SSNs, run locally on a recorded event:
//
//	go run ./examples/streamhandler                 # reads examples/streamhandler/event.json
//	go run ./examples/streamhandler -event my.json
//
// The event was recorded with values sealed under a demo key written in
// demokeys.go, so it runs without AWS; one of its images is damaged on
// purpose, to show a partial batch failure. In a Lambda function the
// repository would use KMS (repo.New[User]("users") does by default) and
// main would be lambda.Start(h.handle) from github.com/aws/aws-lambda-go:
// stream.LambdaEvent and stream.BatchResponse are the JSON Lambda passes
// and expects. Run with -record to record the event again.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
	"github.com/dynoseal/dynoseal/stream"
)

type User struct {
	PK    string                  `dynamodbav:"pk" repo:"hash"`
	Email string                  `dynamodbav:"email"`
	SSN   field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
}

func main() {
	event := flag.String("event", "examples/streamhandler/event.json", "the recorded Lambda event")
	record := flag.Bool("record", false, "record the event file again, then handle it")
	flag.Parse()
	if err := run(context.Background(), *event, *record); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, path string, record bool) error {
	users, err := newUsers(enc.New(demoKeys()))
	if err != nil {
		return err
	}
	if record {
		if err := recordEvent(ctx, path); err != nil {
			return err
		}
	}
	ev, err := readEvent(path)
	if err != nil {
		return err
	}
	h := handler{users: users}
	resp, err := h.handle(ctx, ev)
	if err != nil {
		return err
	}
	out, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	fmt.Printf("response to Lambda: %s\n", out)
	fmt.Printf("KMS Decrypt calls for %d records: %d\n", len(ev.Records), users.Encryptor().Stats().DecryptCalls)
	return nil
}

func newUsers(e *enc.Encryptor) (*repo.Repo[User], error) {
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: demoKeyID})
	return repo.New[User]("users", repo.WithRegistry(reg), repo.WithEncryptor(e))
}

func readEvent(path string) (stream.LambdaEvent, error) {
	var ev stream.LambdaEvent
	b, err := os.ReadFile(path)
	if err != nil {
		return ev, fmt.Errorf("read event: %w", err)
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		return ev, fmt.Errorf("decode event %s: %w", path, err)
	}
	return ev, nil
}

type handler struct {
	users *repo.Repo[User]
}

// handle opens the whole batch at once (one Decrypt per data key) and
// processes the changes in order. At the first record it cannot process it
// stops and reports that record: Lambda retries the batch from it, so the
// records after it would be processed twice if this went on.
func (h handler) handle(ctx context.Context, ev stream.LambdaEvent) (stream.BatchResponse, error) {
	var resp stream.BatchResponse
	for _, c := range stream.Open(ctx, h.users, ev.Records) {
		if err := c.Err(); err != nil {
			fmt.Printf("%s failed, reported for retry: %v\n", c.Record.EventID, err)
			resp.Fail(c.Record)
			return resp, nil
		}
		process(c)
	}
	return resp, nil
}

// process stands for the handler's work (updating a search index, an
// audit trail, ...). This demo prints what it sees, SSNs masked.
func process(c stream.Change[User]) {
	switch c.Record.EventName {
	case stream.Insert:
		fmt.Printf("%s insert %s ssn %s\n", c.Record.EventID, c.New.Item.PK, masked(c.New.Item.SSN))
	case stream.Modify:
		fmt.Printf("%s modify %s ssn %s -> %s\n", c.Record.EventID, c.New.Item.PK, masked(c.Old.Item.SSN), masked(c.New.Item.SSN))
	case stream.Remove:
		fmt.Printf("%s remove %s (by TTL: %v)\n", c.Record.EventID, c.Old.Item.PK, c.Record.ByTTL())
	}
}

// masked shows the last four characters of an SSN only.
func masked(ssn field.Encrypted[string]) string {
	v, err := ssn.Value()
	if err != nil || len(v) < 4 {
		return "(not available)"
	}
	return "***-**-" + v[len(v)-4:]
}
