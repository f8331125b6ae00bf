package repo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// CheckKeys makes one KMS call per spec T uses (see enc.Encryptor.Check), so
// that a key that is missing, disabled or not allowed fails the service at
// start-up, not on its first write or read. sample gives values, by
// attribute name, for the attributes specs take encryption context from
// (Spec.ContextFrom), e.g. {"tenant_id": "acme"}, so that policies with
// kms:EncryptionContext conditions are checked too; a spec that needs one
// that sample lacks fails. Each beacon's HMAC key is checked too, with the
// kms:GenerateMac its lookups and writes will make (kept by the beacon
// cache, when on). The error joins one error per spec or beacon that failed.
func (r *Repo[T]) CheckKeys(ctx context.Context, sample map[string]string) (err error) {
	ctx, sp := r.trace(ctx, "CheckKeys", 0)
	defer sp.end(&err)
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(r.plan.specs)) {
		spec := r.plan.specs[name]
		itemCtx, serr := sampleContext(spec.ContextFrom, sample)
		if serr == nil {
			serr = r.encryptor.Check(ctx, spec, itemCtx)
		}
		if serr != nil {
			errs = append(errs, fmt.Errorf("repo %s: check spec %q: %w", r.table, name, serr))
		}
	}
	for _, b := range r.plan.beacons {
		if berr := r.encryptor.CheckBeacon(ctx, b.spec); berr != nil {
			errs = append(errs, fmt.Errorf("repo %s: check beacon %q of %s: %w", r.table, b.name, b.field.name, berr))
		}
	}
	return errors.Join(errs...)
}

// sampleContext is the item context of a spec taking it from attributes
// (context key -> attribute), with values from sample.
func sampleContext(from, sample map[string]string) (map[string]string, error) {
	if len(from) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(from))
	for _, key := range slices.Sorted(maps.Keys(from)) {
		v, ok := sample[from[key]]
		if !ok {
			return nil, fmt.Errorf("the spec takes context %q from attribute %s: give a sample value for it", key, from[key])
		}
		out[key] = v
	}
	return out, nil
}
