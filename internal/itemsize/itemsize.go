// Package itemsize counts the size of DynamoDB items as DynamoDB counts it against its limits.
package itemsize

import "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

// Of is the size DynamoDB charges an item (or key) against its limits:
// attribute names plus values, as its documentation describes.
func Of(m map[string]types.AttributeValue) int {
	n := 0
	for name, v := range m {
		n += len(name) + Value(v)
	}
	return n
}

func Value(v types.AttributeValue) int {
	n := 0
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return number(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberSS:
		for _, s := range v.Value {
			n += len(s)
		}
	case *types.AttributeValueMemberNS:
		for _, s := range v.Value {
			n += number(s)
		}
	case *types.AttributeValueMemberBS:
		for _, b := range v.Value {
			n += len(b)
		}
	case *types.AttributeValueMemberL:
		n = 3
		for _, e := range v.Value {
			n += 1 + Value(e)
		}
	case *types.AttributeValueMemberM:
		n = 3
		for k, e := range v.Value {
			n += 1 + len(k) + Value(e)
		}
	default: // BOOL, NULL
		return 1
	}
	return n
}

// number is one byte per two significant digits plus one.
func number(s string) int {
	digits := 0
	lead := true
	trailing := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 'e' || c == 'E' {
			break
		}
		if c < '0' || c > '9' {
			continue
		}
		if lead && c == '0' {
			continue
		}
		lead = false
		digits++
		if c == '0' {
			trailing++
		} else {
			trailing = 0
		}
	}
	return (max(digits-trailing, 1)+1)/2 + 1
}
