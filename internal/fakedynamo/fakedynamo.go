// Package fakedynamo is an in-memory DynamoDB behind an http.RoundTripper.
// A *dynamodb.Client built over it (see [Transport.Client]) sends its
// requests exactly as it would to the service: the SDK serialises, signs,
// sends, checks the response checksum and deserialises, so benchmarks and
// tests measure the whole client, and only the network is left out.
//
// It speaks the DynamoDB JSON 1.0 protocol for PutItem, GetItem, DeleteItem,
// UpdateItem, Query, Scan, BatchWriteItem, BatchGetItem, CreateTable,
// DescribeTable and DeleteTable. What it does not implement it refuses with
// a ValidationException rather than ignoring: condition expressions outside
// UpdateItem, local secondary indexes, a Scan of an index, Select and
// ProjectionExpression on a Scan, nested paths in projections, and the
// parts of UpdateItem, conditions and filters listed below.
//
// Semantics kept from the service: items are keyed by the table's hash and
// range key (numbers compare by value, binary by bytes, strings by UTF-8
// bytes); a Query reads one partition in range-key order (or reversed), with
// a key condition of equality on the hash key and optionally one of =, <,
// <=, >, >=, BETWEEN or begins_with on the range key; Limit counts the items
// read, before any filter, and a response cut by Limit always carries
// LastEvaluatedKey; a response also stops once the items read reach
// PageBytes (1 MB by default), as DynamoDB stops at 1 MB; ExclusiveStartKey
// continues after the key given; batch requests are limited to 25 writes or
// 100 keys and refuse duplicate keys. Attribute values are checked for
// shape and stored as sent (numbers are not normalised); sizes are counted
// in JSON bytes, not DynamoDB's units. Nothing is ever left unprocessed.
//
// A Scan reads the partitions in a fixed order (by a hash of the hash key),
// each in range-key order, with Limit, ExclusiveStartKey and the page cut as
// a Query. Segment s of TotalSegments n holds the partitions whose hash
// falls in the s-th of n equal ranges: every item is in one segment, the
// same for every request, and a start key must be of the segment asked for.
//
// CreateTable takes GlobalSecondaryIndexes, each of a hash key, an optional
// range key and a Projection of ALL, KEYS_ONLY or INCLUDE with
// NonKeyAttributes (throughput settings are ignored, as the table's are);
// DescribeTable shows them ACTIVE, with their item count and size. An
// index holds the items that have its key attributes, and no others (it is
// sparse), with the attributes it projects, among which the table's and
// the index's key attributes always are. Writes keep it up to date, and a
// write is refused whose index key attribute is of another type than the
// index's, is empty, or is a number that does not parse. A Query with
// IndexName reads one partition of the index, with a key condition on the
// index's keys as on the table's, in the order of the index's range key
// and then of the table's key (DynamoDB leaves the order of ties
// unspecified), with Limit, ExclusiveStartKey and the page cut as for the
// table, the page's size counted in the items as projected; its
// LastEvaluatedKey holds the table's key attributes and the index's. As in
// DynamoDB, a Query of an index refuses ConsistentRead, Select
// ALL_ATTRIBUTES unless the index projects ALL, and a ProjectionExpression
// or a filter that reads an attribute the index does not project; Select
// ALL_PROJECTED_ATTRIBUTES is taken for an index only.
//
// Query and Scan take a FilterExpression in the language of the conditions
// of UpdateItem below, applied to the items a page has read: an item the
// filter drops still counts toward Limit and the page size, Count is the
// number of items kept and ScannedCount of those read, and LastEvaluatedKey
// is the last item read, kept or not. A Query's filter may not read a key
// attribute of the table or index queried, as in DynamoDB.
//
// UpdateItem takes an UpdateExpression of a SET clause of path = :value
// actions and an ADD clause of name :number actions, each clause at most
// once, in either order; paths are #name placeholders with map members (.)
// and list indexes ([i]); a path under a missing or mistyped member is
// invalid, an index past a list's end appends, and ADD adds exactly (as
// decimals of at most 38 digits) to a top-level number, 0 if missing.
// Overlapping paths and key attributes are refused. A ConditionExpression
// may join by AND, with or without parentheses around its parts, the
// conditions a = b (operands being paths or :values;
// the same type and value, a missing path equal to nothing), a <> b (which
// holds where a = b does not, so also where a path is missing),
// attribute_exists(path) and attribute_not_exists(path); one that fails is
// a ConditionalCheckFailedException that writes nothing, with the old item
// if ReturnValuesOnConditionCheckFailure is ALL_OLD. Without a condition a
// missing item is created with its key. ReturnConsumedCapacity TOTAL
// reports the larger of the item's sizes before and after in 1 KB units.
// Refused: REMOVE and DELETE, functions (if_not_exists, list_append, ...),
// arithmetic, paths as values, attribute names other than #placeholders,
// ADD of sets or to nested paths, OR, NOT, functions other
// than attribute_exists and attribute_not_exists, and comparisons other
// than = and <> in conditions and filters, ReturnValues other than NONE,
// and AttributeUpdates, Expected and ConditionalOperator.
package fakedynamo

import (
	"bytes"
	"context"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

const targetPrefix = "DynamoDB_20120810."

// KeyAttribute is one attribute of a table's primary key.
type KeyAttribute struct {
	Name string
	Type string // "S", "N" or "B"
}

// Transport serves DynamoDB requests from memory. It is safe for
// concurrent use. The zero value is not ready; use [New].
type Transport struct {
	// PageBytes is the size, in JSON bytes of the items read, at which a
	// Query response stops; 0 means 1 MB. Set it before use.
	PageBytes int

	mu       sync.RWMutex
	tables   map[string]*table
	requests map[string]int
	busy     atomic.Int64 // nanoseconds spent in RoundTrip
}

// New returns a transport with no tables.
func New() *Transport {
	return &Transport{tables: map[string]*table{}, requests: map[string]int{}}
}

// Client returns a DynamoDB client that sends every request to t, signed
// with static test credentials, in region us-east-1. It does not load the
// shared AWS configuration. fns may change the options further.
func (t *Transport) Client(fns ...func(*dynamodb.Options)) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region: "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(ctx context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDFAKEDYNAMO", SecretAccessKey: "fake-secret", Source: "fakedynamo"}, nil
		}),
		HTTPClient:   &http.Client{Transport: t},
		BaseEndpoint: aws.String("http://fakedynamo.invalid"),
	}, fns...)
}

// AddTable creates a table with keys[0] as its hash key and keys[1], if
// given, as its range key, as CreateTable would.
func (t *Transport) AddTable(name string, keys ...KeyAttribute) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.addTableLocked(name, keys); err != nil {
		return err
	}
	return nil
}

// Requests returns how many requests of op (e.g. "Query") t has served,
// failed ones included.
func (t *Transport) Requests(op string) int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.requests[op]
}

// Busy returns the time t has spent serving requests, in RoundTrip from
// reading the request body to returning the response (whose body the
// client reads later). Benchmarks of a client subtract it to leave the
// client's own time.
func (t *Transport) Busy() time.Duration { return time.Duration(t.busy.Load()) }

// apiError is an error the service would return, by its type name; item,
// if set, is the item a failed condition returns (a JSON object).
type apiError struct {
	code string
	msg  string
	item []byte
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func validation(msg string) *apiError { return &apiError{"ValidationException", msg, nil} }

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	defer func() { t.busy.Add(int64(time.Since(start))) }()
	var body []byte
	if req.Body != nil {
		buf := bytes.NewBuffer(make([]byte, 0, max(req.ContentLength, 0)+bytes.MinRead))
		_, err := buf.ReadFrom(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = buf.Bytes()
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	status, out := http.StatusOK, []byte(nil)
	op, ok := strings.CutPrefix(req.Header.Get("X-Amz-Target"), targetPrefix)
	var err *apiError
	if !ok || req.Method != http.MethodPost {
		err = &apiError{"UnknownOperationException", "fakedynamo: not a DynamoDB_20120810 request", nil}
	} else {
		out, err = t.serve(op, body)
	}
	if err != nil {
		status, out = http.StatusBadRequest, errorBody(err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/x-amz-json-1.0")
	h.Set("Content-Length", strconv.Itoa(len(out)))
	h.Set("X-Amzn-Requestid", "FAKEDYNAMO")
	h.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(out)), 10))
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(out)),
		ContentLength: int64(len(out)),
		Request:       req,
	}, nil
}

// handlers serve the operations the transport implements, by name.
var handlers = map[string]func(*Transport, []byte) ([]byte, *apiError){
	"PutItem":        (*Transport).putItem,
	"GetItem":        (*Transport).getItem,
	"DeleteItem":     (*Transport).deleteItem,
	"UpdateItem":     (*Transport).updateItem,
	"Query":          (*Transport).query,
	"Scan":           (*Transport).scan,
	"BatchWriteItem": (*Transport).batchWriteItem,
	"BatchGetItem":   (*Transport).batchGetItem,
	"CreateTable":    (*Transport).createTable,
	"DescribeTable":  (*Transport).describeTable,
	"DeleteTable":    (*Transport).deleteTable,
}

// errorBody is the response body of err.
func errorBody(err *apiError) []byte {
	out := append(appendJSONString([]byte(`{"__type":`), "com.amazonaws.dynamodb.v20120810#"+err.code), `,"message":`...)
	out = appendJSONString(out, err.msg)
	if err.item != nil {
		out = append(append(out, `,"Item":`...), err.item...)
	}
	return append(out, '}')
}

func (t *Transport) serve(op string, body []byte) ([]byte, *apiError) {
	t.mu.Lock()
	t.requests[op]++
	t.mu.Unlock()
	fn, ok := handlers[op]
	if !ok {
		return nil, &apiError{"UnknownOperationException", "fakedynamo: " + op + " is not implemented", nil}
	}
	return fn(t, body)
}
