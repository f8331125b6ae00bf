package itemsize

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestItemSizeCountsLikeDynamoDB(t *testing.T) {
	item := map[string]types.AttributeValue{
		"pk":   &types.AttributeValueMemberS{Value: "héllo"},                                                                        // 2 + 6
		"n":    &types.AttributeValueMemberN{Value: "12345"},                                                                        // 1 + 3 + 1
		"b":    &types.AttributeValueMemberB{Value: []byte{1, 2, 3}},                                                                // 1 + 3
		"ok":   &types.AttributeValueMemberBOOL{Value: true},                                                                        // 2 + 1
		"null": &types.AttributeValueMemberNULL{Value: true},                                                                        // 4 + 1
		"ss":   &types.AttributeValueMemberSS{Value: []string{"a", "bc"}},                                                           // 2 + 3
		"l":    &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberS{Value: "xy"}}},              // 1 + 3 + 1 + 2
		"m":    &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: "v"}}}, // 1 + 3 + 1 + 1 + 1
	}
	if got, want := Of(item), 8+5+4+3+5+5+7+7; got != want {
		t.Fatalf("Of = %d, want %d", got, want)
	}
}
