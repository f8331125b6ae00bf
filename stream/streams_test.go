package stream_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	streamstypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
	"github.com/dynoseal/dynoseal/stream"
)

// toStreams converts the strings an item of patient has into the
// Streams API's attribute values, as GetRecords returns them.
func toStreams(t *testing.T, m map[string]types.AttributeValue) map[string]streamstypes.AttributeValue {
	t.Helper()
	out := map[string]streamstypes.AttributeValue{}
	for k, v := range m {
		s, ok := v.(*types.AttributeValueMemberS)
		if !ok {
			t.Fatalf("attribute %s is %T", k, v)
		}
		out[k] = &streamstypes.AttributeValueMemberS{Value: s.Value}
	}
	return out
}

func streamsRecord(n int, name streamstypes.OperationType, old, new map[string]streamstypes.AttributeValue) streamstypes.Record {
	return streamstypes.Record{
		EventID: aws.String(fmt.Sprintf("evt-%d", n)), EventName: name,
		Dynamodb: &streamstypes.StreamRecord{
			SequenceNumber: aws.String(fmt.Sprint(1000 + n)), StreamViewType: streamstypes.StreamViewTypeNewAndOldImages,
			Keys: map[string]streamstypes.AttributeValue{"pk": &streamstypes.AttributeValueMemberS{Value: "P"}}, OldImage: old, NewImage: new,
		},
	}
}

// A batch of GetRecords records whose values share a data key costs one
// Decrypt; a record whose image does not convert fails alone.
func TestOpenStreamsOneDecryptPerBatch(t *testing.T) {
	keys := enctest.New()
	w := patients(t, enc.New(keys, enc.WithEncryptCache(enc.CacheLimits{})))
	var recs []streamstypes.Record
	for i := range 20 {
		m := toStreams(t, sealed(t, w, fmt.Sprintf("P#%d", i), "N", fmt.Sprintf("000-00-%04d", i)))
		recs = append(recs, streamsRecord(i, streamstypes.OperationTypeModify, m, m))
	}
	recs[7].Dynamodb.NewImage = map[string]streamstypes.AttributeValue{"ssn": &streamstypes.UnknownUnionMember{Tag: "Z"}}

	r := patients(t, enc.New(keys))
	changes := stream.OpenStreams(context.Background(), r, recs)
	for i, c := range changes {
		checkStreamsChange(t, i, c, i == 7)
	}
	if n := r.Encryptor().Stats().DecryptCalls; n != 1 {
		t.Errorf("Decrypt calls = %d for 39 images under one data key, want 1", n)
	}
	if _, err := stream.FromStreams(recs[7]); err == nil {
		t.Error("FromStreams of an unknown attribute type: no error")
	}
}

func checkStreamsChange(t *testing.T, i int, c stream.Change[patient], newFails bool) {
	t.Helper()
	if c.Record.EventName != stream.Modify || c.Record.SequenceNumber != fmt.Sprint(1000+i) {
		t.Errorf("change %d: %s %s", i, c.Record.EventName, c.Record.SequenceNumber)
	}
	if got, _ := c.Old.Item.SSN.Value(); got != fmt.Sprintf("000-00-%04d", i) {
		t.Errorf("change %d: old ssn did not open (%v)", i, c.Old.Err)
	}
	if failed := c.New.Err != nil; failed != newFails || !c.New.Present {
		t.Errorf("change %d: new image present %v, err %v", i, c.New.Present, c.New.Err)
	}
}

// A KEYS_ONLY stream has no images: the changes carry keys only, and
// nothing is decrypted.
func TestKeysOnly(t *testing.T) {
	keys := enctest.New()
	rec := streamsRecord(1, streamstypes.OperationTypeRemove, nil, nil)
	rec.Dynamodb.StreamViewType = streamstypes.StreamViewTypeKeysOnly
	r := patients(t, enc.New(keys))
	changes := stream.OpenStreams(context.Background(), r, []streamstypes.Record{rec})
	c := changes[0]
	if c.Old.Present || c.New.Present || c.Err() != nil || c.Record.ViewType != stream.KeysOnly {
		t.Errorf("change = %+v, err %v", c, c.Err())
	}
	if pk := c.Record.Keys["pk"].(*types.AttributeValueMemberS).Value; pk != "P" {
		t.Errorf("keys = %v", c.Record.Keys)
	}
	if keys.Decrypts.Load() != 0 {
		t.Errorf("Decrypt calls = %d, want 0", keys.Decrypts.Load())
	}
}

func TestOpenEmptyBatch(t *testing.T) {
	if changes := stream.Open(context.Background(), patients(t, enc.New(enctest.New())), nil); len(changes) != 0 {
		t.Errorf("changes = %v", changes)
	}
}
