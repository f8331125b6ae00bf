package stream

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// EventName says what happened to the item.
type EventName string

const (
	Insert EventName = "INSERT" // a new item: New only
	Modify EventName = "MODIFY" // a changed item: Old and New
	Remove EventName = "REMOVE" // a deleted item (by a call or by TTL): Old only
)

// ViewType is what the stream was set to keep of each change.
type ViewType string

const (
	KeysOnly       ViewType = "KEYS_ONLY" // no images: only Keys
	NewImage       ViewType = "NEW_IMAGE"
	OldImage       ViewType = "OLD_IMAGE"
	NewAndOldImage ViewType = "NEW_AND_OLD_IMAGES"
)

// Identity is who made a change when it was not a caller of the table:
// DynamoDB itself ({Type: "Service", PrincipalID: "dynamodb.amazonaws.com"})
// for items deleted by TTL.
type Identity struct {
	Type        string `json:"type"`
	PrincipalID string `json:"principalId"`
}

// Record is one stream record as it arrived, with its images still sealed,
// in the attribute values of the dynamodb package whichever source it came
// from (a Lambda event or GetRecords).
type Record struct {
	EventID        string
	EventName      EventName
	EventVersion   string
	EventSource    string // "aws:dynamodb"
	EventSourceARN string // the stream's ARN; Lambda events only
	AWSRegion      string

	// SequenceNumber orders the records of a shard; it is the item
	// identifier Lambda wants in a partial batch failure.
	SequenceNumber          string
	SizeBytes               int64
	ViewType                ViewType
	ApproximateCreationTime time.Time

	// Keys are the item's primary key attributes; they are never encrypted.
	Keys map[string]types.AttributeValue
	// OldImage and NewImage are the item before and after the change, as
	// stored (encrypted values sealed); nil when the stream's view type or
	// the event leaves them out.
	OldImage map[string]types.AttributeValue
	NewImage map[string]types.AttributeValue

	// UserIdentity is set for changes DynamoDB made itself (TTL).
	UserIdentity *Identity
}

// ByTTL says whether DynamoDB removed the item because its TTL passed.
func (r Record) ByTTL() bool {
	return r.EventName == Remove && r.UserIdentity != nil &&
		r.UserIdentity.Type == "Service" && r.UserIdentity.PrincipalID == "dynamodb.amazonaws.com"
}
