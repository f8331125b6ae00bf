package field_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/field"
	"github.com/dynoseal/dynoseal/internal/cell"
)

const (
	secretText = "PLAINTEXT-SSN-123-45-6789"
	secretNum  = 987654321987
)

type secretProfile struct {
	Name string
	Card string
}

// leaks lists every form of the secrets that output must not contain.
func leaks(out string) []string {
	forms := []string{
		secretText, hex.EncodeToString([]byte(secretText)), strings.ToUpper(hex.EncodeToString([]byte(secretText))),
		"PLAINTEXT", hex.EncodeToString([]byte("PLAINTEXT")),
		strconv.Itoa(secretNum), strconv.FormatInt(secretNum, 16), strconv.FormatInt(secretNum, 8),
		"Alice", "4111111111111111",
	}
	var found []string
	for _, f := range forms {
		if strings.Contains(out, f) {
			found = append(found, f)
		}
	}
	return found
}

type holder struct {
	Exported field.Encrypted[string]
	hidden   field.Encrypted[string]
	Num      field.Encrypted[int64]
	hiddenN  field.Encrypted[int64]
	Bytes    field.Encrypted[[]byte]
	Profile  field.Encrypted[secretProfile]
	Ptr      *field.Encrypted[string]
	hiddenP  *field.Encrypted[string]
	List     []field.Encrypted[string]
	Map      map[string]field.Encrypted[string]
	Plain    string
}

type outer struct {
	Holder   holder
	holder   holder
	Ptr      *holder
	hiddenP  *holder
	Holders  []holder
	HPtrs    []*holder
	hiddenHs []holder
}

func newHolder() holder {
	p := field.NewEncrypted(secretText)
	return holder{
		Exported: field.NewEncrypted(secretText),
		hidden:   field.NewEncrypted(secretText),
		Num:      field.NewEncrypted(int64(secretNum)),
		hiddenN:  field.NewEncrypted(int64(secretNum)),
		Bytes:    field.NewEncrypted([]byte(secretText)),
		Profile:  field.NewEncrypted(secretProfile{Name: "Alice", Card: "4111111111111111"}),
		Ptr:      &p,
		hiddenP:  &p,
		List:     []field.Encrypted[string]{field.NewEncrypted(secretText)},
		Map:      map[string]field.Encrypted[string]{"k": field.NewEncrypted(secretText)},
		Plain:    "visible",
	}
}

func subjects() map[string]any {
	h := newHolder()
	e := field.NewEncrypted(secretText)
	return map[string]any{
		"field":             e,
		"pointer to field":  &e,
		"int field":         field.NewEncrypted(int64(secretNum)),
		"bytes field":       field.NewEncrypted([]byte(secretText)),
		"struct field":      field.NewEncrypted(secretProfile{Name: "Alice", Card: "4111111111111111"}),
		"slice of fields":   []field.Encrypted[string]{e, e},
		"map of fields":     map[string]field.Encrypted[string]{"a": e},
		"struct":            h,
		"pointer to struct": &h,
		"nested":            outer{Holder: h, holder: h, Ptr: &h, hiddenP: &h, Holders: []holder{h}, HPtrs: []*holder{&h}, hiddenHs: []holder{h}},
		"pointer to nested": &outer{Holder: h, holder: h, Ptr: &h, Holders: []holder{h}},
		"slice of structs":  []holder{h, h},
		"slice of pointers": []*holder{&h},
		"map of structs":    map[string]holder{"a": h},
		"anonymous struct": struct {
			SSN field.Encrypted[string]
			ssn field.Encrypted[string]
		}{e, e},
	}
}

func TestFmtNeverShowsPlaintext(t *testing.T) {
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%o", "%10.3v", "%T"}
	for name, subject := range subjects() {
		for _, verb := range verbs {
			out := fmt.Sprintf(verb, subject)
			if found := leaks(out); len(found) > 0 {
				t.Errorf("%s with %s shows %q: %s", name, verb, found, out)
			}
		}
		for _, out := range []string{fmt.Sprint(subject), fmt.Sprintln(subject)} {
			if found := leaks(out); len(found) > 0 {
				t.Errorf("%s with Sprint shows %q: %s", name, found, out)
			}
		}
	}
	if got := fmt.Sprintf("%v|%s|%q|%d|%#v", field.NewEncrypted("x"), field.NewEncrypted("x"), field.NewEncrypted("x"), field.NewEncrypted(5), field.NewEncrypted("x")); got != "[encrypted]|[encrypted]|[encrypted]|[encrypted]|[encrypted]" {
		t.Errorf("verbs on the field print %q", got)
	}
	if got := fmt.Sprintf("%+v", newHolder()); !strings.Contains(got, "Exported:[encrypted]") || !strings.Contains(got, "Plain:visible") {
		t.Errorf("struct prints %s; exported fields should read [encrypted] and plain fields stay visible", got)
	}
}

func TestJSONNeverShowsPlaintext(t *testing.T) {
	for name, subject := range subjects() {
		out, err := json.Marshal(subject)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if found := leaks(string(out)); len(found) > 0 {
			t.Errorf("%s: JSON shows %q: %s", name, found, out)
		}
		indented, _ := json.MarshalIndent(subject, "", " ")
		if found := leaks(string(indented)); len(found) > 0 {
			t.Errorf("%s: indented JSON shows %q", name, found)
		}
	}
	out, _ := json.Marshal(newHolder())
	if !strings.Contains(string(out), `"Exported":"[encrypted]"`) || !strings.Contains(string(out), `"Plain":"visible"`) {
		t.Errorf("holder JSON: %s", out)
	}
	var e field.Encrypted[string]
	if err := json.Unmarshal([]byte(`"[encrypted]"`), &e); err == nil {
		t.Error("decoding the redacted JSON form succeeded; it would silently replace the value")
	}
}

func TestSlogNeverShowsPlaintext(t *testing.T) {
	handlers := map[string]func(*bytes.Buffer) slog.Handler{
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	}
	for hname, newHandler := range handlers {
		for name, subject := range subjects() {
			var buf bytes.Buffer
			log := slog.New(newHandler(&buf))
			log.Info("as attr", "v", subject)
			log.Info("as any", slog.Any("v", subject))
			log.Info("in group", slog.Group("g", slog.Any("v", subject), slog.Group("inner", "v", subject)))
			log.With("v", subject).Info("with")
			log.WithGroup("wg").Info("with group", "v", subject)
			if found := leaks(buf.String()); len(found) > 0 {
				t.Errorf("%s handler, %s: log shows %q:\n%s", hname, name, found, buf.String())
			}
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "ssn", field.NewEncrypted(secretText))
	if !strings.Contains(buf.String(), `"ssn":"[encrypted]"`) {
		t.Errorf("JSON log: %s", buf.String())
	}
}

// A loaded value in an unexported field: fmt prints its state one level deep
// for verbs that do not fit a pointer, and even then shows neither the
// ciphertext nor the item it is bound to.
func TestFmtHidesSealedFormOfUnexportedField(t *testing.T) {
	const ciphertext = "ENC:AQABAgMEBQYHCAkKCwwNDg8Q"
	var e field.Encrypted[string]
	if err := e.UnmarshalDynamoDBAttributeValue(&types.AttributeValueMemberS{Value: ciphertext}); err != nil {
		t.Fatal(err)
	}
	cell.Of(&e).SetOrigin("pk=USER#123|tenant=acme")
	v := struct{ ssn field.Encrypted[string] }{e}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		out := fmt.Sprintf(verb, v)
		for _, bad := range []string{ciphertext, "AQABAgMEBQYHCAkKCwwNDg8Q", "USER#123", "acme"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s printed %q, which contains %q", verb, out, bad)
			}
		}
	}
}
