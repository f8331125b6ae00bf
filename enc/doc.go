// Package enc seals field values with AES-256-GCM under AWS KMS data keys and opens them again.
//
// A sealed value is stored as [Prefix] followed by the standard base64 of an
// envelope: a version byte, the KMS-encrypted data key, a nonce and the GCM
// ciphertext (see docs/format.md). [Encryptor] asks its [KeyProvider] for one
// data key per distinct (key, region, context) in a call and seals every value
// of that group locally, so KMS cost grows with the number of keys in play,
// not with the number of values. Optional caches ([WithCache]) reuse data
// keys across calls within limits.
//
// Version 1 envelopes (the default) are byte-compatible with pydynox.
// Version 2 ([Spec].Version) binds each value to its attribute and its item's
// primary key ([Binding]), so a ciphertext moved elsewhere does not open. A
// spec's encryption context can be static ([Spec].Context) and taken from
// each item ([Spec].ContextFrom), e.g. one context per tenant.
//
// A [Beacon] is a short keyed hash of a value, stored beside it so that an
// index can find items by the value ([Encryptor.Beacons]); its key comes
// from one kms:GenerateMac with a KMS HMAC key (see docs/search.md).
package enc
