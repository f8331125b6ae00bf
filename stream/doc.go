// Package stream gives the records of a DynamoDB stream as typed changes of
// a repository's item type, with their encrypted fields opened: the old and
// new images of each record, for a Lambda function's event ([LambdaEvent])
// and for the DynamoDB Streams API ([OpenStreams] over GetRecords output).
//
// A batch of records is opened together through the repository's
// encryptor, so the data keys its images share cost one KMS Decrypt each
// for the whole batch, not one per record. An image that does not open
// (a damaged value, a key KMS refuses) fails alone: its Change carries the
// error, and the other records open as usual, so a handler can report just
// that record as a partial batch failure ([BatchResponse]).
//
// Images are never logged or printed by this package, and its errors name
// records, keys and attributes, never values.
package stream
