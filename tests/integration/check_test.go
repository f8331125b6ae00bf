package integration

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/repo"
)

// CheckKeys finds at start-up what the first write or read would: a key
// that is missing or disabled, with one KMS call per spec.
func TestCheckKeysAtStartUp(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	check := func(spec enc.Spec) (enc.Stats, error) {
		reg := enc.NewRegistry()
		reg.MustRegister("pii", spec)
		r := engineRepoOn[User](t, f, "users-not-needed", repo.WithRegistry(reg))
		err := r.CheckKeys(ctx, nil)
		return r.Encryptor().Stats(), err
	}
	if st, err := check(enc.Spec{KeyID: f.alias}); err != nil || st.GenerateDataKeyCalls != 1 {
		t.Fatalf("a usable key: %v, %+v; want no error after one GenerateDataKey", err, st)
	}
	if _, err := check(enc.Spec{KeyID: "alias/no-such-key-" + f.keyID}); !errors.Is(err, enc.ErrKeyNotFound) {
		t.Fatalf("a missing key: %v, want ErrKeyNotFound", err)
	}
	if st, err := check(enc.Spec{KeyID: f.alias, Mode: enc.ReadOnly}); err != nil || st.DescribeKeyCalls != 1 || st.GenerateDataKeyCalls != 0 {
		t.Fatalf("a read-only spec: %v, %+v; want one DescribeKey", err, st)
	}
	if _, err := f.env.KMS.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(f.keyID)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = f.env.KMS.EnableKey(context.Background(), &kms.EnableKeyInput{KeyId: aws.String(f.keyID)})
	})
	// DescribeKey reports the state on both backends, so this holds on moto
	// too, which otherwise keeps using a disabled key.
	if _, err := check(enc.Spec{KeyID: f.alias, Mode: enc.ReadOnly}); !errors.Is(err, enc.ErrKeyDisabled) {
		t.Fatalf("a read-only spec on a disabled key: %v, want ErrKeyDisabled", err)
	}
}
