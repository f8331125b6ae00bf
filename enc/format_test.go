package enc_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"os"
	"testing"

	"github.com/dynoseal/dynoseal/enc"
)

// The worked example of docs/format.md: fixed inputs, and the stored strings
// they give. The test keeps the document honest: the strings must still be
// what the encryptor writes, must still open, and must appear in the file.
var (
	exampleDataKey      = []byte{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f}
	exampleEncryptedKey = []byte("EXAMPLE-ENCRYPTED-DATA-KEY")
	exampleNonce        = []byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab}
	examplePlaintext    = "123-45-6789"
	exampleSpec         = enc.Spec{KeyID: "alias/my-app-key"}
	exampleBinding      = enc.Binding{Attribute: "ssn", Key: []enc.KeyAttribute{enc.StringKey("pk", "USER#123")}}

	exampleV1 = "ENC:AQAaRVhBTVBMRS1FTkNSWVBURUQtREFUQS1LRVmgoaKjpKWmp6ipqqvXKk8Acf4viVVdvp9MlTGqssQkjo4SV+oEQtw="
	exampleV2 = "ENC:AgAaRVhBTVBMRS1FTkNSWVBURUQtREFUQS1LRVmgoaKjpKWmp6ipqqvXKk8Acf4viVVdvnveaSESpAH/BPIXkjo702Q="
)

func exampleEncryptor() *enc.Encryptor {
	return enc.New(&fixedKeys{plain: exampleDataKey, blob: exampleEncryptedKey}, enc.WithRandom(repeatReader(exampleNonce)))
}

func TestFormatWorkedExample(t *testing.T) {
	ctx := context.Background()
	e := exampleEncryptor()
	v1, err := e.Encrypt(ctx, exampleSpec, []byte(examplePlaintext))
	if err != nil {
		t.Fatal(err)
	}
	v2spec := exampleSpec
	v2spec.Version = enc.Version2
	v2, err := e.SealOne(ctx, enc.SealRequest{Spec: v2spec, Plaintext: []byte(examplePlaintext), Binding: exampleBinding})
	if err != nil {
		t.Fatal(err)
	}
	if v1 != exampleV1 || v2 != exampleV2 {
		t.Fatalf("the encryptor now writes\nv1 %s\nv2 %s", v1, v2)
	}

	got, err := e.Decrypt(ctx, exampleSpec, exampleV1)
	if err != nil || string(got) != examplePlaintext {
		t.Fatalf("v1 example opens to %q, %v", got, err)
	}
	got, err = e.OpenOne(ctx, enc.OpenRequest{Spec: v2spec, Stored: exampleV2, Binding: exampleBinding})
	if err != nil || string(got) != examplePlaintext {
		t.Fatalf("v2 example opens to %q, %v", got, err)
	}

	doc, err := os.ReadFile("../docs/format.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{exampleV1, exampleV2} {
		if !bytes.Contains(doc, []byte(s)) {
			t.Errorf("docs/format.md lacks %s", s)
		}
	}

	// The additional data shown in the document opens the version-2 value
	// with plain AES-GCM.
	const aadHex = "02001a4558414d504c452d454e435259505445442d444154412d4b45590000000373736e0000000100000002706b53000000085553455223313233"
	if !bytes.Contains(doc, []byte(aadHex)) {
		t.Error("docs/format.md lacks the additional data")
	}
	aad, _ := hex.DecodeString(aadHex)
	raw := decodeStored(t, exampleV2)
	block, _ := aes.NewCipher(exampleDataKey)
	gcm, _ := cipher.NewGCM(block)
	n := 3 + len(exampleEncryptedKey)
	plain, err := gcm.Open(nil, raw[n:n+12], raw[n+12:], aad)
	if err != nil || string(plain) != examplePlaintext {
		t.Fatalf("documented additional data: %q, %v", plain, err)
	}
}
