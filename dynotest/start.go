package dynotest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// KMSStarter starts a KMS service on 127.0.0.1 for the "strict" backend,
// with its files in dir, and returns its base URL and how to stop it.
type KMSStarter func(dir string) (url string, stop func() error, err error)

var (
	kmsMu      sync.Mutex
	kmsStarter KMSStarter
)

// RegisterKMS sets the KMS that runs next to dynalite. Package
// github.com/dynoseal/dynoseal/dynotest/localkms registers an embedded
// local-kms when it is imported.
func RegisterKMS(start KMSStarter) {
	kmsMu.Lock()
	defer kmsMu.Unlock()
	kmsStarter = start
}

func registeredKMS() KMSStarter {
	kmsMu.Lock()
	defer kmsMu.Unlock()
	return kmsStarter
}

// startMoto starts moto_server, which serves DynamoDB and KMS on one port.
func startMoto(dir string) (*services, error) {
	path, err := program(EnvMotoServer, "moto_server")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	url := "http://127.0.0.1:" + port
	p, err := launchReady(dir, "moto", url+"/moto-api/", path, "-H", "127.0.0.1", "-p", port)
	if err != nil {
		return nil, err
	}
	return &services{endpoints{dynamodb: url, kms: url, backend: "moto"}, []func() error{p.stop}}, nil
}

// startStrict starts dynalite and the registered KMS.
func startStrict(dir string) (*services, error) {
	kmsStart := registeredKMS()
	path, err := program(EnvDynalite, "dynalite")
	if err != nil {
		return nil, err
	}
	if kmsStart == nil {
		return nil, fmt.Errorf("dynalite (%s) has no KMS beside it: import _ \"github.com/dynoseal/dynoseal/dynotest/localkms\": %w",
			path, errNotInstalled)
	}
	ddb, err := startDynalite(dir, path)
	if err != nil {
		return nil, err
	}
	kmsURL, stopKMS, err := kmsStart(filepath.Join(dir, "kms"))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("start KMS: %w", err), ddb.stops[0]())
	}
	ddb.kms = kmsURL
	ddb.stops = append(ddb.stops, stopKMS)
	return ddb, nil
}

// startDynalite starts dynalite with tables that change state in 50 ms.
func startDynalite(dir, path string) (*services, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"--host", "127.0.0.1", "--port", port, "--createTableMs", "50", "--deleteTableMs", "50", "--updateTableMs", "50"}
	if strings.HasSuffix(path, ".js") {
		args = append([]string{path}, args...)
		if path, err = exec.LookPath("node"); err != nil {
			return nil, fmt.Errorf("node, to run dynalite's %s: %w", args[0], err)
		}
	}
	url := "http://127.0.0.1:" + port
	p, err := launchReady(dir, "dynalite", url+"/", path, args...)
	if err != nil {
		return nil, err
	}
	return &services{endpoints{dynamodb: url, backend: "strict"}, []func() error{p.stop}}, nil
}

// program returns the path of a program: from the variable env when set,
// else name looked up on PATH.
func program(env, name string) (string, error) {
	if path := os.Getenv(env); path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("%s=%s: %w", env, path, err)
		}
		return path, nil
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not on PATH: %w", name, errNotInstalled)
	}
	return path, nil
}
