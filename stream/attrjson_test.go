package stream_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/stream"
)

const everyType = `{"Records": [{
  "eventID": "e1", "eventName": "INSERT",
  "dynamodb": {
    "ApproximateCreationDateTime": 1700000000.25,
    "Keys": {"pk": {"S": "a"}},
    "NewImage": {
      "pk": {"S": "a"}, "n": {"N": "12.5"}, "b": {"B": "AQID"}, "t": {"BOOL": true},
      "z": {"NULL": true}, "ss": {"SS": ["x", "y"]}, "ns": {"NS": ["1", "2"]},
      "bs": {"BS": ["AQ==", "Ag=="]},
      "l": {"L": [{"S": "in"}, {"M": {"deep": {"N": "3"}}}]},
      "m": {"M": {"k": {"L": []}}}
    },
    "SequenceNumber": "111", "SizeBytes": 90, "StreamViewType": "NEW_IMAGE"
  }
}]}`

func decodeEveryType(t *testing.T) stream.LambdaEvent {
	t.Helper()
	var ev stream.LambdaEvent
	if err := json.Unmarshal([]byte(everyType), &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestDecodeEveryAttributeType(t *testing.T) {
	rec := decodeEveryType(t).Records[0]
	wantImage := map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "a"},
		"n":  &types.AttributeValueMemberN{Value: "12.5"},
		"b":  &types.AttributeValueMemberB{Value: []byte{1, 2, 3}},
		"t":  &types.AttributeValueMemberBOOL{Value: true},
		"z":  &types.AttributeValueMemberNULL{Value: true},
		"ss": &types.AttributeValueMemberSS{Value: []string{"x", "y"}},
		"ns": &types.AttributeValueMemberNS{Value: []string{"1", "2"}},
		"bs": &types.AttributeValueMemberBS{Value: [][]byte{{1}, {2}}},
		"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{
			&types.AttributeValueMemberS{Value: "in"},
			&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"deep": &types.AttributeValueMemberN{Value: "3"}}},
		}},
		"m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": &types.AttributeValueMemberL{Value: []types.AttributeValue{}}}},
	}
	if !reflect.DeepEqual(rec.NewImage, wantImage) {
		t.Errorf("NewImage = %#v", rec.NewImage)
	}
	if rec.OldImage != nil || rec.ViewType != stream.NewImage || rec.SequenceNumber != "111" || rec.SizeBytes != 90 {
		t.Errorf("record = %+v", rec)
	}
	if want := time.Unix(1700000000, 250e6).UTC(); !rec.ApproximateCreationTime.Equal(want) {
		t.Errorf("ApproximateCreationTime = %v, want %v", rec.ApproximateCreationTime, want)
	}
}

// What MarshalJSON writes reads back the same.
func TestEncodeRoundTrip(t *testing.T) {
	ev := decodeEveryType(t)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var again stream.LambdaEvent
	if err := json.Unmarshal(b, &again); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, ev) {
		t.Errorf("round trip changed the event:\n%s", b)
	}
}

func TestDecodeNullImageIsAbsent(t *testing.T) {
	var rec stream.Record
	if err := json.Unmarshal([]byte(`{"eventName":"REMOVE","dynamodb":{"Keys":{"pk":{"S":"a"}},"NewImage":null,"SequenceNumber":"1"}}`), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.NewImage != nil {
		t.Errorf("NewImage = %v, want nil", rec.NewImage)
	}
}

// Decoding errors name the attribute and what was wrong, never the value.
func TestDecodeErrorsShowNoValues(t *testing.T) {
	const secret = "123-45-6789"
	for _, image := range []string{
		`{"ssn": {"N": ["123-45-6789"]}}`,
		`{"ssn": {"S": "123-45-6789", "N": "1"}}`,
		`{"ssn": {"X": "123-45-6789"}}`,
		`{"ssn": {"M": {"in": {"B": "123-45-6789"}}}}`,
		`{"ssn": {"L": [{"BOOL": "123-45-6789"}]}}`,
		`{"ssn": "123-45-6789"}`,
	} {
		var rec stream.Record
		err := json.Unmarshal([]byte(`{"eventID":"e1","dynamodb":{"NewImage":`+image+`}}`), &rec)
		if err == nil {
			t.Errorf("%s: no error", image)
			continue
		}
		if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), `"ssn"`) {
			t.Errorf("%s: error %q", image, err)
		}
	}
}

func TestBatchResponseJSON(t *testing.T) {
	var resp stream.BatchResponse
	resp.Fail(stream.Record{EventID: "e1", SequenceNumber: "42"})
	b, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"batchItemFailures":[{"itemIdentifier":"42"}]}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}
