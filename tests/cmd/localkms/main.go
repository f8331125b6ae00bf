// Command localkms serves github.com/nsmithuk/local-kms in-process, bound to
// 127.0.0.1 only. The upstream program listens on every interface and has no
// bind option, so this one builds its own small router over the upstream
// request handlers and serves it on the loopback address.
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
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nsmithuk/local-kms/src/config"
	"github.com/nsmithuk/local-kms/src/data"
	"github.com/nsmithuk/local-kms/src/handler"
	"github.com/sirupsen/logrus"
)

// operation is one KMS API call served by the upstream handler.
type operation func(*handler.RequestHandler) handler.Response

// operations lists every call the upstream handler implements. Naming them
// here (rather than dispatching by reflection) makes an upstream rename a
// compile error instead of a runtime 400.
var operations = map[string]operation{
	"CancelKeyDeletion":                   (*handler.RequestHandler).CancelKeyDeletion,
	"CreateAlias":                         (*handler.RequestHandler).CreateAlias,
	"CreateKey":                           (*handler.RequestHandler).CreateKey,
	"Decrypt":                             (*handler.RequestHandler).Decrypt,
	"DeleteAlias":                         (*handler.RequestHandler).DeleteAlias,
	"DeleteImportedKeyMaterial":           (*handler.RequestHandler).DeleteImportedKeyMaterial,
	"DescribeKey":                         (*handler.RequestHandler).DescribeKey,
	"DisableKey":                          (*handler.RequestHandler).DisableKey,
	"DisableKeyRotation":                  (*handler.RequestHandler).DisableKeyRotation,
	"EnableKey":                           (*handler.RequestHandler).EnableKey,
	"EnableKeyRotation":                   (*handler.RequestHandler).EnableKeyRotation,
	"Encrypt":                             (*handler.RequestHandler).Encrypt,
	"GenerateDataKey":                     (*handler.RequestHandler).GenerateDataKey,
	"GenerateDataKeyPair":                 (*handler.RequestHandler).GenerateDataKeyPair,
	"GenerateDataKeyPairWithoutPlaintext": (*handler.RequestHandler).GenerateDataKeyPairWithoutPlaintext,
	"GenerateDataKeyWithoutPlaintext":     (*handler.RequestHandler).GenerateDataKeyWithoutPlaintext,
	"GenerateMac":                         (*handler.RequestHandler).GenerateMac,
	"GenerateRandom":                      (*handler.RequestHandler).GenerateRandom,
	"GetKeyPolicy":                        (*handler.RequestHandler).GetKeyPolicy,
	"GetKeyRotationStatus":                (*handler.RequestHandler).GetKeyRotationStatus,
	"GetParametersForImport":              (*handler.RequestHandler).GetParametersForImport,
	"GetPublicKey":                        (*handler.RequestHandler).GetPublicKey,
	"ImportKeyMaterial":                   (*handler.RequestHandler).ImportKeyMaterial,
	"ListAliases":                         (*handler.RequestHandler).ListAliases,
	"ListKeys":                            (*handler.RequestHandler).ListKeys,
	"ListResourceTags":                    (*handler.RequestHandler).ListResourceTags,
	"PutKeyPolicy":                        (*handler.RequestHandler).PutKeyPolicy,
	"ReEncrypt":                           (*handler.RequestHandler).ReEncrypt,
	"ScheduleKeyDeletion":                 (*handler.RequestHandler).ScheduleKeyDeletion,
	"Sign":                                (*handler.RequestHandler).Sign,
	"TagResource":                         (*handler.RequestHandler).TagResource,
	"UntagResource":                       (*handler.RequestHandler).UntagResource,
	"UpdateAlias":                         (*handler.RequestHandler).UpdateAlias,
	"UpdateKeyDescription":                (*handler.RequestHandler).UpdateKeyDescription,
	"Verify":                              (*handler.RequestHandler).Verify,
	"VerifyMac":                           (*handler.RequestHandler).VerifyMac,
}

// kmsServer routes KMS JSON requests to the upstream handlers.
type kmsServer struct {
	db  *data.Database
	log *logrus.Logger
}

func (s *kmsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.log.Debugf("%s %s %s %s", r.RemoteAddr, r.Method, r.URL, r.Header.Get("X-Amz-Target"))

	if r.URL.Path == "/health" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok\n")
		return
	}
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !strings.Contains(r.Header.Get("Content-Type"), "json") {
		http.Error(w, "only JSON content types are accepted", http.StatusUnsupportedMediaType)
		return
	}

	target := r.Header.Get("X-Amz-Target")
	name := target[strings.LastIndex(target, ".")+1:]
	op, ok := operations[name]
	if !ok || !strings.Contains(target, ".") {
		writeJSONError(w, http.StatusBadRequest, "UnknownOperationException",
			fmt.Sprintf("operation %q is not implemented by local-kms", target))
		return
	}

	resp := op(handler.NewRequestHandler(r, s.log, s.db))
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(resp.Code)
	io.WriteString(w, resp.Body)
}

func writeJSONError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(code)
	fmt.Fprintf(w, "{\"__type\":%s,\"message\":%s}", strconv.Quote(typ), strconv.Quote(msg))
}

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

	db, err := openDatabase(dir)
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
		Handler:           &kmsServer{db: db, log: logger},
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

// openDatabase opens the upstream LevelDB store, turning its panic (for
// example when another process holds the lock) into an error.
func openDatabase(dir string) (db *data.Database, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("opening key store %s: %v", dir, r)
		}
	}()
	return data.NewDatabase(dir), nil
}
