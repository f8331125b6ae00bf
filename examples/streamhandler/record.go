package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/stream"
)

// recordEvent writes a Lambda event of five changes to two users, their
// values sealed under one data key (an encrypt cache, as a busy writer
// would have), and the new image of the last MODIFY damaged.
func recordEvent(ctx context.Context, path string) error {
	w, err := newUsers(enc.New(demoKeys(), enc.WithEncryptCache(enc.CacheLimits{})))
	if err != nil {
		return err
	}
	images := map[string]map[string]types.AttributeValue{}
	for name, u := range map[string]User{
		"ann1": {PK: "USER#1", Email: "ann@example.com", SSN: field.NewEncrypted("123-45-6789")},
		"ann2": {PK: "USER#1", Email: "ann@example.com", SSN: field.NewEncrypted("123-45-0000")},
		"bob1": {PK: "USER#2", Email: "bob@example.com", SSN: field.NewEncrypted("987-65-4321")},
		"bob2": {PK: "USER#2", Email: "bob@example.net", SSN: field.NewEncrypted("987-65-1111")},
	} {
		if images[name], err = w.Marshal(ctx, u); err != nil {
			return fmt.Errorf("record event: %w", err)
		}
	}
	damage(images["bob2"])
	b, err := json.MarshalIndent(stream.LambdaEvent{Records: []stream.Record{
		demoRecord(1, stream.Insert, nil, images["ann1"]),
		demoRecord(2, stream.Insert, nil, images["bob1"]),
		demoRecord(3, stream.Modify, images["ann1"], images["ann2"]),
		demoRecord(4, stream.Modify, images["bob1"], images["bob2"]),
		demoRecord(5, stream.Remove, images["ann2"], nil),
	}}, "", "  ")
	if err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func demoRecord(n int, name stream.EventName, old, new map[string]types.AttributeValue) stream.Record {
	img := new
	if img == nil {
		img = old
	}
	return stream.Record{
		EventID: fmt.Sprintf("demo-%d", n), EventName: name, EventVersion: "1.1", EventSource: "aws:dynamodb", AWSRegion: "us-east-1",
		EventSourceARN: "arn:aws:dynamodb:us-east-1:123456789012:table/users/stream/2025-01-01T00:00:00.000",
		SequenceNumber: fmt.Sprintf("4000000000000000000%02d", n), SizeBytes: 180, ViewType: stream.NewAndOldImage,
		ApproximateCreationTime: time.Date(2025, 1, 1, 12, 0, n, 0, time.UTC),
		Keys:                    map[string]types.AttributeValue{"pk": img["pk"]}, OldImage: old, NewImage: new,
	}
}

// damage changes one character of the sealed SSN's ciphertext.
func damage(m map[string]types.AttributeValue) {
	s := m["ssn"].(*types.AttributeValueMemberS).Value
	i, c := len(s)-6, byte('A')
	if s[i] == c {
		c = 'B'
	}
	m["ssn"] = &types.AttributeValueMemberS{Value: s[:i] + string(c) + s[i+1:]}
}
