package dynotest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// endpoints is where DynamoDB and KMS answer and what serves them. It is
// also an AWS configuration source of per-service base endpoints, so that
// clients made from Env.Config reach the started services.
type endpoints struct {
	dynamodb, kms, backend string
	fromEnv                bool
}

// GetServiceBaseEndpoint answers the AWS SDK's question for a service's
// base endpoint (the SDK's configsources.ServiceBaseEndpointProvider).
func (ep endpoints) GetServiceBaseEndpoint(_ context.Context, sdkID string) (string, bool, error) {
	switch sdkID {
	case "DynamoDB":
		return ep.dynamodb, true, nil
	case "KMS":
		return ep.kms, true, nil
	}
	return "", false, nil
}

// errNoBackend marks the errors that skip a test (or fail it under
// DYNOTEST_REQUIRE=1); every other error fails it.
var errNoBackend = errors.New("no DynamoDB and KMS to test against")

// howToProvide is the part of the skip message that says what to set.
const howToProvide = "Set " + EnvDynamoDBEndpoint + " and " + EnvKMSEndpoint +
	" to running services, or put moto_server (pip install \"moto[server]\") on PATH," +
	" or dynalite (npm install -g dynalite) on PATH with the test binary importing" +
	" _ \"github.com/dynoseal/dynoseal/dynotest/localkms\"."

// unavailable skips tb, or fails it when the error is not a missing backend
// or DYNOTEST_REQUIRE=1 is set.
func unavailable(tb testing.TB, err error) {
	tb.Helper()
	switch {
	case !errors.Is(err, errNoBackend):
		tb.Fatalf("dynotest: %v", err)
	case os.Getenv(EnvRequire) == "1":
		tb.Fatalf("dynotest: %v. %s (Failing because %s=1.)", err, howToProvide, EnvRequire)
	default:
		tb.Skipf("dynotest: %v. %s Set %s=1 to fail instead of skipping.", err, howToProvide, EnvRequire)
	}
}

// endpointsFor finds the services for tb: from the environment, from the
// services shared by the test binary (Main), or started for tb alone.
func endpointsFor(tb testing.TB) (endpoints, error) {
	ep, ok, err := fromEnvironment()
	if ok || err != nil {
		return ep, err
	}
	if shared.enabled() {
		return shared.get()
	}
	svc, err := start(tb.TempDir())
	if err != nil {
		return endpoints{}, err
	}
	tb.Cleanup(func() {
		if err := svc.stop(); err != nil {
			tb.Errorf("dynotest: %v", err)
		}
	})
	return svc.endpoints, nil
}

// fromEnvironment reads AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_KMS.
func fromEnvironment() (endpoints, bool, error) {
	ddb, kms := os.Getenv(EnvDynamoDBEndpoint), os.Getenv(EnvKMSEndpoint)
	switch {
	case ddb == "" && kms == "":
		return endpoints{}, false, nil
	case ddb == "" || kms == "":
		return endpoints{}, false, fmt.Errorf("only one of %s and %s is set: set both, or neither to let dynotest start services",
			EnvDynamoDBEndpoint, EnvKMSEndpoint)
	}
	backend := os.Getenv(EnvBackend)
	if backend == "" {
		backend = "env"
	}
	return endpoints{dynamodb: ddb, kms: kms, backend: backend, fromEnv: true}, true, nil
}

// Main runs the tests of m with the services dynotest starts shared by the
// whole test binary: started by the first New, stopped after the last test.
// Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(dynotest.Main(m)) }
//
// It returns m.Run's exit code, or 1 when stopping the services fails.
func Main(m *testing.M) int {
	shared.enable()
	code := m.Run()
	if err := shared.close(); err != nil {
		fmt.Fprintf(os.Stderr, "dynotest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// sharedServices are the services of a test binary that runs through Main.
type sharedServices struct {
	mu      sync.Mutex
	on      bool
	started bool
	dir     string
	svc     *services
	err     error
}

var shared sharedServices

func (s *sharedServices) enable() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.on = true
}

func (s *sharedServices) enabled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.on
}

// get starts the services on its first call and returns them, or the error
// of that first start, on every call.
func (s *sharedServices) get() (endpoints, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		s.started = true
		s.start()
	}
	if s.err != nil {
		return endpoints{}, s.err
	}
	return s.svc.endpoints, nil
}

func (s *sharedServices) start() {
	s.dir, s.err = os.MkdirTemp("", "dynotest-")
	if s.err != nil {
		s.err = fmt.Errorf("temporary directory for services: %w", s.err)
		return
	}
	s.svc, s.err = start(s.dir)
}

// close stops the services and removes their directory.
func (s *sharedServices) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.svc != nil {
		errs = append(errs, s.svc.stop())
	}
	if s.dir != "" {
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", s.dir, err))
		}
	}
	s.svc, s.dir, s.started = nil, "", false
	return errors.Join(errs...)
}

// services are started servers and how to stop them.
type services struct {
	endpoints
	stops []func() error
}

// stop stops the servers, last started first.
func (s *services) stop() error {
	var errs []error
	for i := len(s.stops) - 1; i >= 0; i-- {
		errs = append(errs, s.stops[i]())
	}
	return errors.Join(errs...)
}

// starter starts one backend's servers with their files in dir. It returns
// an error wrapping errNotInstalled when a program it needs is missing.
type starter struct {
	name  string
	start func(dir string) (*services, error)
}

var errNotInstalled = errors.New("not installed")

var starters = []starter{{"moto", startMoto}, {"strict", startStrict}}

// start starts the first backend whose programs are on the machine, or the
// one DYNOTEST_BACKEND names.
func start(dir string) (*services, error) {
	want := os.Getenv(EnvBackend)
	var missing []string
	for _, s := range starters {
		if want != "" && want != s.name {
			continue
		}
		svc, err := s.start(dir)
		if !errors.Is(err, errNotInstalled) {
			return svc, err
		}
		missing = append(missing, err.Error())
	}
	if len(missing) == 0 {
		return nil, fmt.Errorf("%s=%q: want moto or strict", EnvBackend, want)
	}
	return nil, fmt.Errorf("%w (%s)", errNoBackend, strings.Join(missing, "; "))
}
