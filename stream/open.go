package stream

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/repo"
)

// Change is a stream record with its images opened into T.
type Change[T any] struct {
	// Record is the record as it arrived: its event ID and sequence number
	// for checkpoints and partial batch failures, its keys, and its images
	// still sealed.
	Record Record
	// Old is the item before the change (Modify, Remove), New after it
	// (Insert, Modify); each only when the stream keeps that image.
	Old, New Image[T]
	keysErr  error
}

// Image is one image of a change, opened.
type Image[T any] struct {
	Item T
	// Present says the record carries this image. A stream with view type
	// KeysOnly carries none, NewImage no Old, OldImage no New; an Insert
	// has no Old and a Remove no New.
	Present bool
	// Err is why a present image could not be opened, typically a
	// *repo.ItemError naming the key and attribute; Item is then the zero
	// T. It never holds a value of the item.
	Err error
}

// Err reports the images of c that could not be opened, or nil.
func (c Change[T]) Err() error {
	var errs []error
	if c.keysErr != nil {
		errs = append(errs, c.keysErr)
	}
	if c.Old.Err != nil {
		errs = append(errs, fmt.Errorf("old image: %w", c.Old.Err))
	}
	if c.New.Err != nil {
		errs = append(errs, fmt.Errorf("new image: %w", c.New.Err))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("stream: record %s (sequence number %s): %w", c.Record.EventID, c.Record.SequenceNumber, errors.Join(errs...))
}

// Open opens the images of records, in order, into changes of T. All the
// images of the batch are opened together, so each distinct data key among
// them costs one KMS Decrypt however many records share it. An image that
// does not open has its error in its Change (see [Change.Err]) and the
// others are opened all the same. Records without images (a KeysOnly
// stream) cost nothing and carry only their keys.
func Open[T any](ctx context.Context, r *repo.Repo[T], records []Record) []Change[T] {
	return open(ctx, r, records, nil)
}

// open is Open for records some of whose attributes did not convert
// (failed[i], when failed is not nil).
func open[T any](ctx context.Context, r *repo.Repo[T], records []Record, failed []recordErrors) []Change[T] {
	changes := make([]Change[T], len(records))
	var (
		raw []map[string]types.AttributeValue
		at  []*Image[T]
	)
	for i, rec := range records {
		var errs recordErrors
		if failed != nil {
			errs = failed[i]
		}
		c := &changes[i]
		c.Record, c.keysErr = rec, errs[0]
		raw, at = collect(raw, at, &c.Old, rec.OldImage, errs[1])
		raw, at = collect(raw, at, &c.New, rec.NewImage, errs[2])
	}
	items, errs := r.UnmarshalAll(ctx, raw)
	for n, img := range at {
		img.Item, img.Err = items[n], errs[n]
	}
	return changes
}

// collect marks img present when the record has it and adds it to the
// images to open, unless it did not convert.
func collect[T any](raw []map[string]types.AttributeValue, at []*Image[T], img *Image[T], m map[string]types.AttributeValue, convErr error) ([]map[string]types.AttributeValue, []*Image[T]) {
	switch {
	case convErr != nil:
		img.Present, img.Err = true, convErr
	case m != nil:
		img.Present = true
		raw, at = append(raw, m), append(at, img)
	}
	return raw, at
}
