package integration

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streamstypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/dynoseal/dynoseal/dynotest"
	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
	"github.com/dynoseal/dynoseal/stream"
)

func withStream(in *dynamodb.CreateTableInput) {
	in.StreamSpecification = &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages}
}

// streamsClient reaches DynamoDB Streams where DynamoDB is: the emulators
// serve both on one endpoint, and the SDK has no shared variable for it.
func streamsClient(f *fixture) *dynamodbstreams.Client {
	return dynamodbstreams.NewFromConfig(f.env.Config, func(o *dynamodbstreams.Options) {
		if ep := os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"); ep != "" && os.Getenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS") == "" {
			o.BaseEndpoint = aws.String(ep)
		}
	})
}

// readStream returns the records of every shard of the table's stream,
// waiting up to a few seconds for want of them.
func readStream(t *testing.T, f *fixture, table string, want int) []streamstypes.Record {
	t.Helper()
	ctx := context.Background()
	desc, err := f.env.DynamoDB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatalf("describe table: %v", err)
	}
	arn := aws.ToString(desc.Table.LatestStreamArn)
	if arn == "" {
		t.Fatalf("table %s has no stream", table)
	}
	client := streamsClient(f)
	var recs []streamstypes.Record
	for deadline := time.Now().Add(10 * time.Second); len(recs) < want && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		recs = readShards(t, client, arn)
	}
	return recs
}

func readShards(t *testing.T, client *dynamodbstreams.Client, arn string) []streamstypes.Record {
	t.Helper()
	ctx := context.Background()
	out, err := client.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(arn)})
	if err != nil {
		t.Fatalf("describe stream: %v", err)
	}
	var recs []streamstypes.Record
	for _, shard := range out.StreamDescription.Shards {
		recs = append(recs, readShard(t, client, arn, aws.ToString(shard.ShardId))...)
	}
	return recs
}

func readShard(t *testing.T, client *dynamodbstreams.Client, arn, shard string) []streamstypes.Record {
	t.Helper()
	ctx := context.Background()
	it, err := client.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
		StreamArn: aws.String(arn), ShardId: aws.String(shard), ShardIteratorType: streamstypes.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		t.Fatalf("get shard iterator: %v", err)
	}
	var recs []streamstypes.Record
	for next := it.ShardIterator; next != nil; {
		page, err := client.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: next})
		if err != nil {
			t.Fatalf("get records: %v", err)
		}
		if len(page.Records) == 0 {
			break // an open shard always has a next iterator
		}
		recs, next = append(recs, page.Records...), page.NextShardIterator
	}
	return recs
}

// Put, Update and Delete of encrypted items come out of a real stream as
// typed changes with both images opened, at one Decrypt per data key.
func TestStreamImagesOfWrites(t *testing.T) {
	f := newFixture(t)
	if f.env.Backend == "strict" {
		t.Skip("dynalite (the strict backend) has no DynamoDB Streams; this test runs on moto")
	}
	ctx := context.Background()
	f.reg.MustRegister("pii", enc.Spec{KeyID: f.alias})
	w := dynotest.TableWith[User](t, f.env, withStream, repo.WithRegistry(f.reg))

	// Three writes that seal, each under a data key of its own.
	for _, u := range []User{
		{PK: "USER#1", Email: "a@example.com", SSN: field.NewEncrypted("111-11-1111")},
		{PK: "USER#2", Email: "b@example.com", SSN: field.NewEncrypted("222-22-2222")},
	} {
		if err := w.Put(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Update(ctx, repo.Key{Hash: "USER#1"}, repo.NewUpdate().Set("ssn", "111-11-9999")); err != nil {
		t.Fatal(err)
	}
	if err := w.Delete(ctx, repo.Key{Hash: "USER#2"}); err != nil {
		t.Fatal(err)
	}

	recs := readStream(t, f, w.Table(), 4)
	r, err := repo.New[User](w.Table(), repo.WithClient(f.env.DynamoDB), repo.WithRegistry(f.reg), repo.WithEncryptor(f.env.Encryptor()))
	if err != nil {
		t.Fatal(err)
	}
	changes := stream.OpenStreams(ctx, r, recs)
	checkStreamChanges(t, changes)
	// Five images under three data keys.
	if n := r.Encryptor().Stats().DecryptCalls; n != 3 {
		t.Errorf("Decrypt calls = %d, want 3 (one per data key)", n)
	}
}

type streamWant struct {
	name           stream.EventName
	pk             string
	oldSSN, newSSN string
}

func checkStreamChanges(t *testing.T, changes []stream.Change[User]) {
	t.Helper()
	wants := []streamWant{
		{stream.Insert, "USER#1", "", "111-11-1111"},
		{stream.Insert, "USER#2", "", "222-22-2222"},
		{stream.Modify, "USER#1", "111-11-1111", "111-11-9999"},
		{stream.Remove, "USER#2", "222-22-2222", ""},
	}
	if len(changes) != len(wants) {
		t.Fatalf("%d changes, want %d", len(changes), len(wants))
	}
	for i, w := range wants {
		c := changes[i]
		if err := c.Err(); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		if c.Record.EventName != w.name || c.Record.SequenceNumber == "" || c.Record.ViewType != stream.NewAndOldImage {
			t.Errorf("change %d: %s, sequence %q, view %s", i, c.Record.EventName, c.Record.SequenceNumber, c.Record.ViewType)
		}
		checkStreamImage(t, i, "old", c.Old, w.pk, w.oldSSN)
		checkStreamImage(t, i, "new", c.New, w.pk, w.newSSN)
	}
}

func checkStreamImage(t *testing.T, i int, which string, img stream.Image[User], pk, ssn string) {
	t.Helper()
	if img.Present != (ssn != "") {
		t.Errorf("change %d: %s image present = %v", i, which, img.Present)
		return
	}
	if !img.Present {
		return
	}
	got, err := img.Item.SSN.Value()
	if img.Item.PK != pk || err != nil || got != ssn {
		t.Errorf("change %d: %s image of %s did not open to the value written (%v)", i, which, img.Item.PK, err)
	}
}
