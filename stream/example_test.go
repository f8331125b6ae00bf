package stream_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
	"github.com/dynoseal/dynoseal/stream"
)

type User struct {
	PK  string                  `dynamodbav:"pk" repo:"hash"`
	SSN field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
}

// A Lambda handler opens a batch of records in one go and reports the
// records it could not process. (KMS is in memory here; the event is made
// on the spot as Lambda would pass it.)
func ExampleOpen() {
	ctx := context.Background()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/pii"})
	users, _ := repo.New[User]("users", repo.WithRegistry(reg), repo.WithEncryptor(enc.New(enctest.New())))
	ev := lambdaEventOf(ctx, users)

	var resp stream.BatchResponse
	for _, c := range stream.Open(ctx, users, ev.Records) {
		if err := c.Err(); err != nil {
			resp.Fail(c.Record)
			continue
		}
		switch c.Record.EventName {
		case stream.Insert:
			fmt.Println("insert", c.New.Item.PK, "ssn", c.New.Item.SSN) // field.Encrypted never prints its value
		case stream.Modify:
			before, _ := c.Old.Item.SSN.Value()
			after, _ := c.New.Item.SSN.Value()
			fmt.Println("modify", c.New.Item.PK, "ssn changed:", before != after)
		case stream.Remove:
			fmt.Println("remove", c.Old.Item.PK)
		}
	}
	// Four images under two data keys: one Decrypt per key, not per image.
	fmt.Println("KMS Decrypt calls:", users.Encryptor().Stats().DecryptCalls)
	// Output:
	// insert u1 ssn [encrypted]
	// modify u1 ssn changed: true
	// remove u1
	// KMS Decrypt calls: 2
}

// lambdaEventOf writes an insert, a modify and a remove of one user and
// returns them as Lambda passes them to a handler: JSON, decoded.
func lambdaEventOf(ctx context.Context, users *repo.Repo[User]) stream.LambdaEvent {
	// Each Marshal call seals under a data key of its own: two keys.
	v1, _ := users.Marshal(ctx, User{PK: "u1", SSN: field.NewEncrypted("123-45-6789")})
	v2, _ := users.Marshal(ctx, User{PK: "u1", SSN: field.NewEncrypted("987-65-4321")})
	recs := []stream.Record{
		{EventID: "1", EventName: stream.Insert, SequenceNumber: "100", ViewType: stream.NewAndOldImage, NewImage: v1},
		{EventID: "2", EventName: stream.Modify, SequenceNumber: "200", ViewType: stream.NewAndOldImage, OldImage: v1, NewImage: v2},
		{EventID: "3", EventName: stream.Remove, SequenceNumber: "300", ViewType: stream.NewAndOldImage, OldImage: v2},
	}
	b, _ := json.Marshal(stream.LambdaEvent{Records: recs})
	var ev stream.LambdaEvent
	_ = json.Unmarshal(b, &ev)
	return ev
}
