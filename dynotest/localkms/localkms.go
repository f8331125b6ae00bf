// Package localkms serves github.com/nsmithuk/local-kms in-process on
// 127.0.0.1: a KMS that checks key states and encryption contexts as AWS
// does.
//
// Imported for its side effect, it gives dynotest the KMS of its "strict"
// backend (dynalite and local-kms):
//
//	import _ "github.com/dynoseal/dynoseal/dynotest/localkms"
//
// It is a package of its own so that a test binary that uses moto or
// endpoints from the environment does not link local-kms and its
// dependencies (LevelDB, secp256k1, logrus, aws-sdk-go v1).
//
// Keys are made in region us-east-1 of account 111122223333 (local-kms reads
// these from package variables, so every server of a process shares them).
package localkms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nsmithuk/local-kms/src/config"
	"github.com/nsmithuk/local-kms/src/data"
	"github.com/sirupsen/logrus"

	"github.com/dynoseal/dynoseal/dynotest"
)

// Region and Account are used in the ARNs of keys and aliases.
const (
	Region  = "us-east-1"
	Account = "111122223333"
)

func init() { dynotest.RegisterKMS(startForDynotest) }

// startForDynotest is the KMSStarter: key store and log in dir.
func startForDynotest(dir string) (string, func() error, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("local-kms directory: %w", err)
	}
	logf, err := os.Create(filepath.Join(dir, "localkms.log"))
	if err != nil {
		return "", nil, fmt.Errorf("local-kms log: %w", err)
	}
	s, err := Start(filepath.Join(dir, "data"), logf)
	if err != nil {
		return "", nil, errors.Join(err, logf.Close())
	}
	return s.URL, func() error { return errors.Join(s.Close(), logf.Close()) }, nil
}

// Server is a running local-kms.
type Server struct {
	// URL is the base URL, http://127.0.0.1:PORT.
	URL  string
	srv  *http.Server
	db   *data.Database
	done chan error
}

var setGlobals sync.Once

// Start serves local-kms on a free port of 127.0.0.1, with its key store in
// dir (created if missing) and its log, one line a request, to log (nil:
// discarded).
func Start(dir string, log io.Writer) (*Server, error) {
	setGlobals.Do(func() { config.AWSRegion, config.AWSAccountId = Region, Account })
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("local-kms key store: %w", err)
	}
	db, err := OpenDatabase(dir)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("local-kms listen: %w", err)
	}
	s := &Server{
		URL:  "http://" + ln.Addr().String(),
		srv:  &http.Server{Handler: Handler(db, newLogger(log)), ReadHeaderTimeout: 10 * time.Second},
		db:   db,
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

func newLogger(w io.Writer) *logrus.Logger {
	if w == nil {
		w = io.Discard
	}
	l := logrus.New()
	l.SetOutput(w)
	l.SetLevel(logrus.InfoLevel)
	l.SetFormatter(&logrus.TextFormatter{DisableColors: true, FullTimestamp: true})
	return l
}

// Close stops the server and closes its key store.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serveErr := <-s.done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	s.db.Close()
	if err != nil {
		return fmt.Errorf("stop local-kms: %w", err)
	}
	return nil
}

// OpenDatabase opens the upstream LevelDB store, turning its panic (for
// example when another process holds the lock) into an error.
func OpenDatabase(dir string) (db *data.Database, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("open local-kms key store %s: %v", dir, r)
		}
	}()
	return data.NewDatabase(dir), nil
}
