package enc

import "context"

// RewrapRequest asks for one stored value in its spec's current form.
type RewrapRequest struct {
	Spec        Spec
	Attribute   string
	Stored      string
	ItemContext map[string]string
	Binding     Binding
}

// Rewrap returns each value in its spec's current form, or "" when it is
// in that form already.
func (e *Encryptor) Rewrap(ctx context.Context, reqs []RewrapRequest) ([]string, []error) {
	out := make([]string, len(reqs))
	errs := make([]error, len(reqs))
	var opens []OpenRequest
	var at []int
	for i, r := range reqs {
		if v, err := EnvelopeVersion(r.Stored); err == nil && v == r.Spec.sealVersion() {
			continue
		}
		opens, at = append(opens, OpenRequest{Spec: r.Spec, Attribute: r.Attribute, Stored: r.Stored, ItemContext: r.ItemContext, Binding: r.Binding}), append(at, i)
	}
	plain, perrs := e.OpenEach(ctx, opens)
	var seals []SealRequest
	var sealAt []int
	for n, i := range at {
		if perrs[n] != nil {
			errs[i] = perrs[n]
			continue
		}
		r := reqs[i]
		seals, sealAt = append(seals, SealRequest{Spec: r.Spec, Attribute: r.Attribute, Plaintext: plain[n], ItemContext: r.ItemContext, Binding: r.Binding}), append(sealAt, i)
	}
	if len(seals) == 0 {
		return out, errs
	}
	stored, err := e.Seal(ctx, seals)
	for n, i := range sealAt {
		if err != nil {
			errs[i] = err
			continue
		}
		out[i] = stored[n]
	}
	return out, errs
}
