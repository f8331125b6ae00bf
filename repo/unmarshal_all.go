package repo

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// UnmarshalAll is Unmarshal for items read together, such as the images of
// a batch of stream records: their encrypted values are opened in one go,
// so each distinct data key among them costs one Decrypt. errs[i] is nil or
// the *ItemError of ms[i], whose item is then the zero T; an item that does
// not open does not stop the others.
func (r *Repo[T]) UnmarshalAll(ctx context.Context, ms []map[string]types.AttributeValue) (items []T, errs []error) {
	if len(ms) == 0 {
		return nil, nil
	}
	ctx, sp := r.trace(ctx, "UnmarshalAll", len(ms))
	defer sp.end(new(error)) // an item that does not open fails alone, not the call
	return r.openItems(ctx, r.encryptor, "unmarshal", ms, false)
}
