package clouddns_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/dnsproviders/clouddns"
	"github.com/go-acme/lego/v4/challenge"
)

// serviceAccountKey returns a Google service account key file's JSON, with
// a fresh private key; its token endpoint is on loopback and never called.
func serviceAccountKey(t *testing.T, project string) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	b, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     project,
		"private_key_id": "k1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "acme@" + project + ".iam.gserviceaccount.com",
		"token_uri":      "http://127.0.0.1:9/token",
	})
	return string(b)
}

func TestServiceAccountOptions(t *testing.T) {
	key := serviceAccountKey(t, "dns-project")
	file := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(file, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    autocert.Options
		wantErr string
	}{
		{"key as text", autocert.Options{"service_account": autocert.Redacted(key)}, ""},
		{"key as file, lego's name", autocert.Options{"GCE_SERVICE_ACCOUNT_FILE": autocert.Redacted(file)}, ""},
		{"project only (application default credentials)", autocert.Options{"project": "p1"}, ""},
		{"nothing", autocert.Options{}, "missing credentials: set project, or service_account, or service_account_file"},
		{"not a key", autocert.Options{"service_account": `{"type":"authorized_user","secret":"hunter22"}`}, `option "service_account": not a Google service account key`},
		{"both", autocert.Options{"service_account": autocert.Redacted(key), "service_account_file": autocert.Redacted(file)}, "give one of them"},
		{"missing file", autocert.Options{"service_account_file": "/nonexistent/sa.json"}, `option "service_account_file": no such file`},
	}
	for _, name := range []string{clouddns.Name, clouddns.LegoName} {
		f, ok := autocert.LookupProvider(name)
		if !ok {
			t.Fatalf("%s not registered", name)
		}
		for _, tc := range tests {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				err := f.(autocert.OptionsValidator).ValidateOptions(tc.opts)
				if tc.wantErr == "" {
					if err != nil {
						t.Fatalf("ValidateOptions: %v", err)
					}
					// Built lazily: no credential lookup or API call yet.
					p, err := f.NewDNSProvider(tc.opts)
					if err != nil {
						t.Fatal(err)
					}
					if _, ok := p.(challenge.ProviderTimeout); !ok {
						t.Error("provider reports no timeouts")
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "hunter22") || strings.Contains(err.Error(), "PRIVATE KEY") {
					t.Errorf("error shows the key: %v", err)
				}
			})
		}
	}
}
