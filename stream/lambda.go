package stream

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// LambdaEvent is the event AWS Lambda passes a function that a DynamoDB
// stream triggers. It decodes the JSON the Lambda runtime hands over, so a
// handler can take it as its event parameter without importing
// aws-lambda-go:
//
//	func handle(ctx context.Context, ev stream.LambdaEvent) (stream.BatchResponse, error)
type LambdaEvent struct {
	Records []Record `json:"Records"`
}

// BatchResponse is what a handler returns to report the records it could
// not process, when the event source mapping has ReportBatchItemFailures:
// Lambda retries the batch from the lowest sequence number reported.
// Returning it empty reports success for the whole batch.
type BatchResponse struct {
	BatchItemFailures []BatchItemFailure `json:"batchItemFailures"`
}

// BatchItemFailure names a record that failed by its sequence number.
type BatchItemFailure struct {
	ItemIdentifier string `json:"itemIdentifier"`
}

// Fail reports rec as failed.
func (b *BatchResponse) Fail(rec Record) {
	b.BatchItemFailures = append(b.BatchItemFailures, BatchItemFailure{ItemIdentifier: rec.SequenceNumber})
}

// lambdaRecord is a record in the JSON of a Lambda event.
type lambdaRecord struct {
	EventID        string      `json:"eventID"`
	EventName      EventName   `json:"eventName"`
	EventVersion   string      `json:"eventVersion,omitempty"`
	EventSource    string      `json:"eventSource,omitempty"`
	AWSRegion      string      `json:"awsRegion,omitempty"`
	Change         lambdaImage `json:"dynamodb"`
	EventSourceARN string      `json:"eventSourceARN,omitempty"`
	UserIdentity   *Identity   `json:"userIdentity,omitempty"`
}

type lambdaImage struct {
	// ApproximateCreationDateTime is in seconds since the epoch, with a
	// fraction in newer events.
	ApproximateCreationDateTime json.Number `json:"ApproximateCreationDateTime,omitempty"`
	Keys                        jsonImage   `json:"Keys,omitempty"`
	NewImage                    jsonImage   `json:"NewImage,omitempty"`
	OldImage                    jsonImage   `json:"OldImage,omitempty"`
	SequenceNumber              string      `json:"SequenceNumber"`
	SizeBytes                   int64       `json:"SizeBytes,omitempty"`
	StreamViewType              ViewType    `json:"StreamViewType"`
}

// UnmarshalJSON reads a record of a Lambda event.
func (r *Record) UnmarshalJSON(b []byte) error {
	var lr lambdaRecord
	if err := json.Unmarshal(b, &lr); err != nil {
		return fmt.Errorf("stream: decode Lambda record: %w", err)
	}
	created, err := epochTime(lr.Change.ApproximateCreationDateTime)
	if err != nil {
		return fmt.Errorf("stream: decode Lambda record %s: ApproximateCreationDateTime: %w", lr.EventID, err)
	}
	*r = Record{
		EventID: lr.EventID, EventName: lr.EventName, EventVersion: lr.EventVersion,
		EventSource: lr.EventSource, EventSourceARN: lr.EventSourceARN, AWSRegion: lr.AWSRegion,
		SequenceNumber: lr.Change.SequenceNumber, SizeBytes: lr.Change.SizeBytes,
		ViewType: lr.Change.StreamViewType, ApproximateCreationTime: created,
		Keys: lr.Change.Keys, OldImage: lr.Change.OldImage, NewImage: lr.Change.NewImage,
		UserIdentity: lr.UserIdentity,
	}
	return nil
}

// MarshalJSON writes r as Lambda would pass it, e.g. to record an event
// for a local run of a handler.
func (r Record) MarshalJSON() ([]byte, error) {
	lr := lambdaRecord{
		EventID: r.EventID, EventName: r.EventName, EventVersion: r.EventVersion,
		EventSource: r.EventSource, EventSourceARN: r.EventSourceARN, AWSRegion: r.AWSRegion,
		Change: lambdaImage{
			ApproximateCreationDateTime: epochSeconds(r.ApproximateCreationTime),
			Keys:                        r.Keys, OldImage: r.OldImage, NewImage: r.NewImage,
			SequenceNumber: r.SequenceNumber, SizeBytes: r.SizeBytes, StreamViewType: r.ViewType,
		},
		UserIdentity: r.UserIdentity,
	}
	b, err := json.Marshal(lr)
	if err != nil {
		return nil, fmt.Errorf("stream: encode record %s: %w", r.EventID, err)
	}
	return b, nil
}

func epochTime(n json.Number) (time.Time, error) {
	if n == "" {
		return time.Time{}, nil
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, err
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e3))*int64(time.Millisecond)).UTC(), nil
}

func epochSeconds(t time.Time) json.Number {
	if t.IsZero() {
		return ""
	}
	if t.Nanosecond() == 0 {
		return json.Number(fmt.Sprint(t.Unix()))
	}
	return json.Number(fmt.Sprintf("%.3f", float64(t.UnixMilli())/1e3))
}
