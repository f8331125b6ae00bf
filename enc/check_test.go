package enc_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/enc/enctest"
)

func TestCheckMakesOneCallPerSpec(t *testing.T) {
	ctx := context.Background()
	keys := enctest.New()
	checked := 0
	keys.Fail = func(op string, k enc.KeyRef) error {
		switch {
		case k.KeyID == "gone":
			return fmt.Errorf("%w: no such key", enc.ErrKeyNotFound)
		case k.Context["tenant"] == "globex":
			return fmt.Errorf("%w: not for this tenant", enc.ErrAccessDenied)
		case op == "CheckKey":
			checked++
		}
		return nil
	}
	e := enc.New(keys)
	tenant := enc.Spec{KeyID: "k", ContextFrom: map[string]string{"tenant": "tenant_id"}}
	for _, c := range []struct {
		name    string
		spec    enc.Spec
		itemCtx map[string]string
		want    error
	}{
		{"sealing spec", enc.Spec{KeyID: "k"}, nil, nil},
		{"missing key", enc.Spec{KeyID: "gone"}, nil, enc.ErrKeyNotFound},
		{"tenant allowed", tenant, map[string]string{"tenant": "acme"}, nil},
		{"tenant refused", tenant, map[string]string{"tenant": "globex"}, enc.ErrAccessDenied},
		{"tenant not given", tenant, nil, enc.ErrItemContext},
		{"read-only spec", enc.Spec{KeyID: "k", Mode: enc.ReadOnly}, nil, nil},
		{"read-only spec, missing key", enc.Spec{KeyID: "gone", Mode: enc.ReadOnly}, nil, enc.ErrKeyNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := e.Check(ctx, c.spec, c.itemCtx)
			var ee *enc.Error
			if c.want == nil && err != nil || c.want != nil && (!errors.Is(err, c.want) || !errors.As(err, &ee) || ee.Op != enc.OpCheck) {
				t.Fatalf("Check = %v, want %v", err, c.want)
			}
		})
	}
	// Four sealing specs reached KMS (the one without its tenant did not);
	// the two read-only ones were described.
	if st := e.Stats(); st.GenerateDataKeyCalls != 4 || st.DescribeKeyCalls != 2 || checked != 1 {
		t.Fatalf("stats %+v, %d checks; want 4 GenerateDataKey and 2 DescribeKey calls", st, checked)
	}
	if err := enc.New(plainProvider{keys}).Check(ctx, enc.Spec{KeyID: "k", Mode: enc.ReadOnly}, nil); err == nil {
		t.Fatal("a read-only spec was checked over a provider that cannot check keys")
	}
}
