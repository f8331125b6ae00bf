package localkms

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

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

// Handler serves the KMS JSON API (POST / with X-Amz-Target
// "TrentService.<Operation>") over db, and GET /health. It logs every
// request to log at debug level.
func Handler(db *data.Database, log *logrus.Logger) http.Handler {
	return &kmsServer{db: db, log: log}
}

func (s *kmsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.log.Debugf("%s %s %s %s", r.RemoteAddr, r.Method, r.URL, r.Header.Get("X-Amz-Target"))
	switch {
	case r.URL.Path == "/health":
		s.health(w, r)
	case r.URL.Path != "/":
		http.NotFound(w, r)
	case r.Method != http.MethodPost:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	case !strings.Contains(r.Header.Get("Content-Type"), "json"):
		http.Error(w, "only JSON content types are accepted", http.StatusUnsupportedMediaType)
	default:
		s.call(w, r)
	}
}

// health answers GET and HEAD /health once the key store is open.
func (s *kmsServer) health(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	s.write(w, "ok\n")
}

// call runs the operation named by X-Amz-Target.
func (s *kmsServer) call(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	_, name, found := strings.Cut(target, ".")
	op, ok := operations[name]
	if !found || !ok {
		s.writeJSONError(w, http.StatusBadRequest, "UnknownOperationException",
			fmt.Sprintf("operation %q is not implemented by local-kms", target))
		return
	}
	resp := op(handler.NewRequestHandler(r, s.log, s.db))
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(resp.Code)
	s.write(w, resp.Body)
}

// write sends a response body; a client that went away is only logged.
func (s *kmsServer) write(w io.Writer, body string) {
	if _, err := io.WriteString(w, body); err != nil {
		s.log.Debugf("write response: %v", err)
	}
}

func (s *kmsServer) writeJSONError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(code)
	s.write(w, fmt.Sprintf("{\"__type\":%s,\"message\":%s}", strconv.Quote(typ), strconv.Quote(msg)))
}
