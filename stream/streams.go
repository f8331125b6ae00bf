package stream

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	streamstypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/dynoseal/dynoseal/repo"
)

// FromStreams converts a record of the DynamoDB Streams API (GetRecords)
// into a Record. An attribute value of a type this SDK does not know fails
// the conversion; the attributes that converted are kept.
func FromStreams(rec streamstypes.Record) (Record, error) {
	out, errs := fromStreams(rec)
	for _, err := range errs {
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// OpenStreams opens the records of GetRecords pages as [Open] does. A
// record whose attributes do not convert has the reason as its images'
// error (see [Change.Err]); the rest go on.
func OpenStreams[T any](ctx context.Context, r *repo.Repo[T], recs []streamstypes.Record) []Change[T] {
	records := make([]Record, len(recs))
	failed := make([]recordErrors, len(recs))
	for i, rec := range recs {
		records[i], failed[i] = fromStreams(rec)
	}
	return open(ctx, r, records, failed)
}

// recordErrors are why a record's keys, old and new image did not convert.
type recordErrors [3]error

func fromStreams(rec streamstypes.Record) (Record, recordErrors) {
	out := Record{
		EventID:      aws.ToString(rec.EventID),
		EventName:    EventName(rec.EventName),
		EventVersion: aws.ToString(rec.EventVersion),
		EventSource:  aws.ToString(rec.EventSource),
		AWSRegion:    aws.ToString(rec.AwsRegion),
	}
	if rec.UserIdentity != nil {
		out.UserIdentity = &Identity{Type: aws.ToString(rec.UserIdentity.Type), PrincipalID: aws.ToString(rec.UserIdentity.PrincipalId)}
	}
	d := rec.Dynamodb
	if d == nil {
		return out, recordErrors{}
	}
	out.SequenceNumber, out.SizeBytes, out.ViewType = aws.ToString(d.SequenceNumber), aws.ToInt64(d.SizeBytes), ViewType(d.StreamViewType)
	out.ApproximateCreationTime = aws.ToTime(d.ApproximateCreationDateTime)
	var errs recordErrors
	out.Keys, errs[0] = convert(out, "keys", d.Keys)
	out.OldImage, errs[1] = convert(out, "old image", d.OldImage)
	out.NewImage, errs[2] = convert(out, "new image", d.NewImage)
	return out, errs
}

func convert(rec Record, what string, m map[string]streamstypes.AttributeValue) (map[string]types.AttributeValue, error) {
	if m == nil {
		return nil, nil
	}
	out, err := attributevalue.FromDynamoDBStreamsMap(m)
	if err != nil {
		return nil, fmt.Errorf("stream: record %s: convert %s: %w", rec.EventID, what, err)
	}
	return out, nil
}
