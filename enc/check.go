package enc

import (
	"context"
	"fmt"
	"time"
)

// KeyChecker is a KeyProvider that can tell whether a key exists and is
// enabled without using it, for specs that only open values (ReadOnly): a
// permission to decrypt shows only with a ciphertext. kmsx implements it
// with kms:DescribeKey.
type KeyChecker interface {
	CheckKey(ctx context.Context, key KeyRef) error
}

// Check makes one KMS call for spec, so that a key that is missing,
// disabled or not allowed fails a service at start-up rather than on its
// first write or read. A spec that seals asks for a data key (and throws it
// away): that proves the key, its state, the kms:GenerateDataKey permission
// and, with itemContext (values for the spec's ContextFrom keys, e.g. a
// tenant's), a policy's kms:EncryptionContext conditions. A ReadOnly spec
// has its key described instead (kms:DescribeKey), which proves the key
// and its state, not the permission to decrypt. PreviousKeyIDs are not
// checked. The error is an *Error, as a failed Seal's.
func (e *Encryptor) Check(ctx context.Context, spec Spec, itemContext map[string]string) error {
	fail := func(err error) error { return &Error{Op: OpCheck, KeyID: spec.KeyID, Err: err} }
	if err := spec.Validate(); err != nil {
		return fail(err)
	}
	ref, err := spec.keyRef(itemContext)
	if err != nil {
		return fail(err)
	}
	if spec.Mode.CanEncrypt() {
		plain, _, err := e.generate(ctx, ref)
		clear(plain)
		if err != nil {
			return fail(err)
		}
		return nil
	}
	checker, ok := e.keys.(KeyChecker)
	if !ok {
		return fail(fmt.Errorf("the key provider (%T) cannot check a key without using it (no CheckKey)", e.keys))
	}
	start := time.Now()
	callCtx, call := e.obs.startKMS(ctx, KMSDescribeKey, ref, 0)
	err = checker.CheckKey(callCtx, ref)
	call.end(ctx, 0, err)
	e.stats.kmsNanos.Add(int64(time.Since(start)))
	e.stats.describe.Add(1)
	if err != nil {
		return fail(err)
	}
	return nil
}
