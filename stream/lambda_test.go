package stream_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
	"github.com/dynoseal/dynoseal/stream"
)

var update = flag.Bool("update", false, "record testdata/lambda_event.json again")

type patient struct {
	PK   string                  `dynamodbav:"pk" repo:"hash"`
	Name string                  `dynamodbav:"name"`
	SSN  field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
}

const lambdaFixture = "testdata/lambda_event.json"

func patients(t testing.TB, e *enc.Encryptor) *repo.Repo[patient] {
	t.Helper()
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: "alias/stream-fixture"})
	r, err := repo.New[patient]("patients", repo.WithRegistry(reg), repo.WithEncryptor(e))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sealed(t testing.TB, r *repo.Repo[patient], pk, name, ssn string) map[string]types.AttributeValue {
	t.Helper()
	m, err := r.Marshal(context.Background(), patient{PK: pk, Name: name, SSN: field.NewEncrypted(ssn)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// damage flips a byte of the sealed SSN's ciphertext, leaving its data key
// intact: the key still decrypts, the value does not open.
func damage(t testing.TB, m map[string]types.AttributeValue) {
	t.Helper()
	s := m["ssn"].(*types.AttributeValueMemberS).Value
	i := len(s) - 6
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	m["ssn"] = &types.AttributeValueMemberS{Value: s[:i] + string(c) + s[i+1:]}
}

func keyOf(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}}
}

// recordLambdaFixture writes the event the fixture test reads: six records
// of two patients, all values sealed under one data key, one image damaged,
// the last record a removal by TTL.
func recordLambdaFixture(t *testing.T) {
	w := patients(t, enc.New(fixtureKeys(), enc.WithEncryptCache(enc.CacheLimits{})))
	p1v1, p1v2 := sealed(t, w, "P#1", "Ann", "111-11-1111"), sealed(t, w, "P#1", "Ann", "111-11-2222")
	p2v1, p2v2 := sealed(t, w, "P#2", "Bob", "222-22-1111"), sealed(t, w, "P#2", "Bobby", "222-22-2222")
	damage(t, p2v2)
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	rec := func(n int, name stream.EventName, pk string, old, new map[string]types.AttributeValue) stream.Record {
		return stream.Record{
			EventID: "evt-" + string(rune('0'+n)), EventName: name, EventVersion: "1.1", EventSource: "aws:dynamodb",
			EventSourceARN: "arn:aws:dynamodb:us-east-1:123456789012:table/patients/stream/2025-03-01T00:00:00.000",
			AWSRegion:      "us-east-1", SequenceNumber: "10000000000000000000" + string(rune('0'+n)), SizeBytes: 200,
			ViewType: stream.NewAndOldImage, ApproximateCreationTime: at.Add(time.Duration(n) * time.Second),
			Keys: keyOf(pk), OldImage: old, NewImage: new,
		}
	}
	ev := stream.LambdaEvent{Records: []stream.Record{
		rec(1, stream.Insert, "P#1", nil, p1v1),
		rec(2, stream.Modify, "P#1", p1v1, p1v2),
		rec(3, stream.Insert, "P#2", nil, p2v1),
		rec(4, stream.Modify, "P#2", p2v1, p2v2),
		rec(5, stream.Remove, "P#1", p1v2, nil),
		rec(6, stream.Remove, "P#2", p2v1, nil),
	}}
	ev.Records[5].UserIdentity = &stream.Identity{Type: "Service", PrincipalID: "dynamodb.amazonaws.com"}
	b, err := json.MarshalIndent(ev, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lambdaFixture, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readLambdaFixture(t *testing.T) stream.LambdaEvent {
	t.Helper()
	if *update {
		recordLambdaFixture(t)
	}
	b, err := os.ReadFile(lambdaFixture)
	if err != nil {
		t.Fatal(err)
	}
	var ev stream.LambdaEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("decode %s: %v", lambdaFixture, err)
	}
	return ev
}

type want struct {
	name            stream.EventName
	oldSSN, newSSN  string // "" when absent
	newFails, byTTL bool
}

func TestOpenLambdaFixture(t *testing.T) {
	ev := readLambdaFixture(t)
	keys := fixtureKeys()
	r := patients(t, enc.New(keys))
	changes := stream.Open(context.Background(), r, ev.Records)

	wants := []want{
		{name: stream.Insert, newSSN: "111-11-1111"},
		{name: stream.Modify, oldSSN: "111-11-1111", newSSN: "111-11-2222"},
		{name: stream.Insert, newSSN: "222-22-1111"},
		{name: stream.Modify, oldSSN: "222-22-1111", newFails: true},
		{name: stream.Remove, oldSSN: "111-11-2222"},
		{name: stream.Remove, oldSSN: "222-22-1111", byTTL: true},
	}
	if len(changes) != len(wants) {
		t.Fatalf("%d changes, want %d", len(changes), len(wants))
	}
	for i, w := range wants {
		checkChange(t, changes[i], w)
	}
	if n := keys.Decrypts.Load(); n != 1 {
		t.Errorf("KMS Decrypt calls = %d for a batch under one data key, want 1", n)
	}
	if got := changes[4].Record.ApproximateCreationTime; !got.Equal(time.Date(2025, 3, 1, 12, 0, 5, 0, time.UTC)) {
		t.Errorf("ApproximateCreationTime = %v", got)
	}
}

func checkChange(t *testing.T, c stream.Change[patient], w want) {
	t.Helper()
	id := c.Record.EventID
	if c.Record.EventName != w.name || c.Record.ByTTL() != w.byTTL {
		t.Errorf("%s: event %s (TTL %v), want %s (TTL %v)", id, c.Record.EventName, c.Record.ByTTL(), w.name, w.byTTL)
	}
	checkImage(t, id+" old", c.Old, w.oldSSN, false)
	checkImage(t, id+" new", c.New, w.newSSN, w.newFails)
	if (c.Err() != nil) != w.newFails {
		t.Errorf("%s: Err() = %v", id, c.Err())
	}
}

func checkImage(t *testing.T, what string, img stream.Image[patient], ssn string, fails bool) {
	t.Helper()
	if fails {
		checkFailedImage(t, what, img)
		return
	}
	if img.Present != (ssn != "") || img.Err != nil {
		t.Fatalf("%s: present %v, err %v", what, img.Present, img.Err)
	}
	if got, _ := img.Item.SSN.Value(); img.Present && got != ssn {
		t.Errorf("%s: ssn did not open to the recorded value", what)
	}
}

func TestDamagedImageErrorHasNoValues(t *testing.T) {
	ev := readLambdaFixture(t)
	changes := stream.Open(context.Background(), patients(t, enc.New(fixtureKeys())), ev.Records)
	err := changes[3].Err()
	if err == nil {
		t.Fatal("no error for the damaged image")
	}
	for _, secret := range []string{"222-22", "Bob", "ENC:"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q shows %q", err, secret)
		}
	}
	for _, s := range []string{"evt-4", "new image", "P#2", "ssn"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
}

func checkFailedImage(t *testing.T, what string, img stream.Image[patient]) {
	t.Helper()
	var ie *repo.ItemError
	if !img.Present || !errors.As(img.Err, &ie) || !errors.Is(img.Err, enc.ErrInvalidCiphertext) {
		t.Errorf("%s: present %v, err %v; want an *ItemError wrapping ErrInvalidCiphertext", what, img.Present, img.Err)
	}
}
