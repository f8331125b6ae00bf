// Command localkms serves github.com/nsmithuk/local-kms in-process, bound to
// 127.0.0.1 only. The upstream program listens on every interface and has no
// bind option, so this one serves the router of dynotest/localkms over the
// upstream request handlers on the loopback address.
//
// Usage:
//
//	localkms -port 4599 -data /tmp/kms-data [-region us-east-1] [-account 111122223333] [-log-level info]
//
// GET /health answers 200 once the key store is open (used for readiness);
// every other request is a KMS JSON call (POST / with X-Amz-Target
// "TrentService.<Operation>"). SIGTERM (and SIGINT, unless it was ignored
// at start) shuts it down cleanly.
//
// Error codes observed from local-kms through aws-sdk-go-v2 (all HTTP 400):
//
//   - Decrypt, wrong or missing encryption context:   InvalidCiphertextException
//   - Decrypt, corrupted ciphertext blob:             InvalidCiphertextException
//   - Decrypt, key disabled, no KeyId in the request: AccessDeniedException
//     (local-kms hides every key lookup failure behind this generic message;
//     real KMS answers DisabledException)
//   - Decrypt, key disabled, KeyId given:             DisabledException
//   - GenerateDataKey, key disabled:                  DisabledException
//   - GenerateDataKey, nonexistent alias or key id:   NotFoundException
//   - key pending deletion or import (read in its source, not exercised):
//     KMSInvalidStateException
//
// moto, for comparison, accepts GenerateDataKey and Decrypt on a disabled key.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/nsmithuk/local-kms/src/config"
	"github.com/sirupsen/logrus"

	"github.com/dynoseal/dynoseal/dynotest/localkms"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "localkms:", err)
		os.Exit(1)
	}
}

func run() error {
	port := flag.Int("port", 0, "TCP port on 127.0.0.1 (0 picks a free one; see -port-file)")
	dataDir := flag.String("data", "", "directory of the LevelDB key store (required; created if missing)")
	region := flag.String("region", "us-east-1", "region used in key and alias ARNs")
	account := flag.String("account", "111122223333", "account id used in key and alias ARNs")
	logLevel := flag.String("log-level", "info", "log level: debug, info, warn, error")
	portFile := flag.String("port-file", "", "if set, write the bound port to this file once listening")
	flag.Parse()

	if flag.NArg() != 0 {
		return fmt.Errorf("unexpected arguments: %v", flag.Args())
	}
	if *dataDir == "" {
		return errors.New("-data DIR is required")
	}
	if *port < 0 || *port > 65535 {
		return fmt.Errorf("-port %d out of range", *port)
	}
	level, err := logrus.ParseLevel(*logLevel)
	if err != nil {
		return err
	}

	logger := logrus.New()
	logger.SetOutput(os.Stderr)
	logger.SetLevel(level)
	logger.SetFormatter(&logrus.TextFormatter{
		DisableColors:   true,
		FullTimestamp:   true,
		TimestampFormat: "2006-01-02 15:04:05.000",
	})

	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}

	// The upstream handlers read these package-level settings.
	config.AWSRegion = *region
	config.AWSAccountId = *account
	config.DatabasePath = dir

	db, err := localkms.OpenDatabase(dir)
	if err != nil {
		return err
	}
	defer db.Close()

	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	bound := ln.Addr().(*net.TCPAddr).Port
	if *portFile != "" {
		if err := os.WriteFile(*portFile, []byte(strconv.Itoa(bound)+"\n"), 0o600); err != nil {
			ln.Close()
			return err
		}
	}

	srv := &http.Server{
		Handler:           localkms.Handler(db, logger),
		ReadHeaderTimeout: 10 * time.Second,
	}

	// A server started in the background by a non-interactive shell inherits
	// an ignored SIGINT; keep it ignored so a terminal's Ctrl-C leaves the
	// stopping to the script that started it (which sends SIGTERM).
	sigs := []os.Signal{syscall.SIGTERM}
	if !signal.Ignored(os.Interrupt) {
		sigs = append(sigs, os.Interrupt)
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	defer stop()

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Infof("local-kms listening on http://127.0.0.1:%d (region %s, account %s, data %s)", bound, *region, *account, dir)

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	return nil
}
