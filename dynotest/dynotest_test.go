package dynotest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/dynoseal/dynoseal/dynotest"
	_ "github.com/dynoseal/dynoseal/dynotest/localkms"
	"github.com/dynoseal/dynoseal/enc"
	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/repo"
)

type user struct {
	PK  string                  `dynamodbav:"pk" repo:"hash"`
	SSN field.Encrypted[string] `dynamodbav:"ssn" enc:"pii"`
}

// recorder is a testing.TB that records Skipf and Fatalf instead of ending
// the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

// noServices leaves dynotest nothing to find: no endpoints, an empty PATH.
func noServices(t *testing.T) {
	for _, k := range []string{dynotest.EnvDynamoDBEndpoint, dynotest.EnvKMSEndpoint, dynotest.EnvBackend,
		dynotest.EnvMotoServer, dynotest.EnvDynalite, dynotest.EnvRequire} {
		t.Setenv(k, "")
	}
	t.Setenv("PATH", t.TempDir())
}

func TestNoServicesSkipsSayingWhatToSet(t *testing.T) {
	noServices(t)
	r := &recorder{TB: t}
	if env := dynotest.New(r); env != nil || r.failed != "" {
		t.Fatalf("New = %v, failed %q; want a skip", env, r.failed)
	}
	for _, want := range []string{"AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_KMS", "moto_server", "dynalite", "DYNOTEST_REQUIRE=1"} {
		if !strings.Contains(r.skipped, want) {
			t.Errorf("skip message does not name %s: %s", want, r.skipped)
		}
	}
}

func TestNoServicesFailsWhenRequired(t *testing.T) {
	noServices(t)
	t.Setenv(dynotest.EnvRequire, "1")
	r := &recorder{TB: t}
	dynotest.New(r)
	if r.skipped != "" || !strings.Contains(r.failed, "AWS_ENDPOINT_URL_KMS") {
		t.Fatalf("skipped %q, failed %q; want a failure naming the variables", r.skipped, r.failed)
	}
}

func TestOneEndpointIsAnError(t *testing.T) {
	noServices(t)
	t.Setenv(dynotest.EnvDynamoDBEndpoint, "http://127.0.0.1:1")
	r := &recorder{TB: t}
	dynotest.New(r)
	if r.skipped != "" || !strings.Contains(r.failed, "only one of") {
		t.Fatalf("skipped %q, failed %q; want a failure", r.skipped, r.failed)
	}
}

func TestUnknownBackendIsAnError(t *testing.T) {
	noServices(t)
	t.Setenv(dynotest.EnvBackend, "localstack")
	r := &recorder{TB: t}
	dynotest.New(r)
	if r.skipped != "" || !strings.Contains(r.failed, "want moto or strict") {
		t.Fatalf("skipped %q, failed %q; want a failure", r.skipped, r.failed)
	}
}

// started runs a round trip on a backend dynotest starts itself.
func started(t *testing.T, backend string) {
	for _, k := range []string{dynotest.EnvDynamoDBEndpoint, dynotest.EnvKMSEndpoint} {
		t.Setenv(k, "")
	}
	t.Setenv(dynotest.EnvBackend, backend)
	env := dynotest.New(t)
	if env.Backend != backend {
		t.Fatalf("Backend %q, want %q", env.Backend, backend)
	}
	roundTrip(t, env)
}

func TestStartsMoto(t *testing.T) {
	if os.Getenv(dynotest.EnvMotoServer) == "" {
		if _, err := exec.LookPath("moto_server"); err != nil {
			t.Skip("moto_server is not on PATH")
		}
	}
	started(t, "moto")
}

func TestStartsDynaliteAndLocalKMS(t *testing.T) {
	if os.Getenv(dynotest.EnvDynalite) == "" {
		if _, err := exec.LookPath("dynalite"); err != nil {
			useRepositoryDynalite(t)
		}
	}
	started(t, "strict")
}

// useRepositoryDynalite points DYNOTEST_DYNALITE at this repository's
// node_modules (make deps), or skips.
func useRepositoryDynalite(t *testing.T) {
	cli, err := filepath.Abs(filepath.Join("..", "node_modules", "dynalite", "cli.js"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cli); err != nil {
		t.Skipf("dynalite is not on PATH and %s is missing (make deps)", cli)
	}
	t.Setenv(dynotest.EnvDynalite, cli)
}

// TestServices runs on whatever New finds: under make integration, the
// endpoints the scripts started.
func TestServices(t *testing.T) {
	roundTrip(t, dynotest.New(t))
}

// MacKey makes an HMAC key, named by its alias, that beacons can use.
func TestMacKey(t *testing.T) {
	env := dynotest.New(t)
	keyID, alias := env.MacKey(t)
	out, err := env.KMS.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String(alias)})
	if err != nil {
		t.Fatal(err)
	}
	m := out.KeyMetadata
	if got := [3]string{aws.ToString(m.KeyId), string(m.KeySpec), string(m.KeyUsage)}; got != [3]string{keyID, "HMAC_256", "GENERATE_VERIFY_MAC"} {
		t.Fatalf("alias %s names key, spec, usage %q", alias, got)
	}
	b := enc.Beacon{KeyID: alias, Bits: 32}
	if _, err := env.Encryptor().Beacons(context.Background(), []enc.BeaconRequest{{Beacon: b, Plaintext: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
}

func roundTrip(t *testing.T, env *dynotest.Env) {
	_, alias := env.Key(t)
	reg := enc.NewRegistry()
	reg.MustRegister("pii", enc.Spec{KeyID: alias})
	users := dynotest.Table[user](t, env, repo.WithRegistry(reg))
	ctx := context.Background()
	if err := users.Put(ctx, user{PK: "USER#1", SSN: field.NewEncrypted("123-45-6789")}); err != nil {
		t.Fatal(err)
	}
	u, err := users.Get(ctx, repo.Key{Hash: "USER#1"})
	if err != nil {
		t.Fatal(err)
	}
	if ssn, err := u.SSN.Value(); err != nil || ssn != "123-45-6789" {
		t.Fatalf("ssn %q, %v", ssn, err)
	}
}
