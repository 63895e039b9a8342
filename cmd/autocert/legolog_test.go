package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/autocert-dev/autocert/acmetest"
)

// reflectedForms returns a secret in the forms a remote API may quote it:
// as it is, JSON-escaped, base64 (both alphabets, padded or not), inside
// the base64 of an HTTP Basic credential (users of each length modulo 3),
// hex, URL-escaped.
func reflectedForms(secret string) []string {
	j, _ := json.Marshal(secret)
	forms := []string{
		secret, string(j),
		hex.EncodeToString([]byte(secret)), strings.ToUpper(hex.EncodeToString([]byte(secret))),
		url.QueryEscape(secret), url.PathEscape(secret),
	}
	for _, v := range []string{secret, "autocert:" + secret, "ops:" + secret, "dns-api:" + secret} {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			forms = append(forms, enc.EncodeToString([]byte(v)))
		}
	}
	return forms
}

// reflectingDNSAPI is an HTTP API of the kind lego's httpreq DNS provider
// talks to: it checks the HTTP Basic credential, publishes the TXT record
// of /present in the test CA's DNS server, and answers /cleanup with a 401
// whose body quotes the credential it received and every secret of the
// config, in all the forms reflectedForms gives, as badly behaved vendor
// APIs do.
type reflectingDNSAPI struct {
	user, password string
	secrets        []string
	ca             *acmetest.Server
	client         *http.Client
}

func (a *reflectingDNSAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || user != a.user || pass != a.password {
		http.Error(w, "wrong credential", http.StatusUnauthorized)
		return
	}
	switch r.URL.Path {
	case "/present":
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		o := a.ca.ProviderOptions()
		req, err := http.NewRequest(http.MethodPost, o[acmetest.OptionAPIURL].Value()+"/txt/add", bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header.Set("Authorization", "Bearer "+o[acmetest.OptionAPIToken].Value())
		resp, err := a.client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	case "/cleanup":
		var quoted []string
		quoted = append(quoted, "Authorization: "+r.Header.Get("Authorization"))
		for _, s := range a.secrets {
			quoted = append(quoted, reflectedForms(s)...)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":"token expired","seen":"%s"}`, strings.Join(quoted, " | "))
	default:
		http.NotFound(w, r)
	}
}

func randomText(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestLegoLogScrubbed: lego's own log goes through the scrubbing of every
// secret of the config. The DNS provider (lego's httpreq, against a real
// HTTP API) fails to clean up with a 401 whose body quotes the DNS
// password, the other DNS token, the EAB key, the API token and the
// webhook URL's token, raw and encoded; lego logs that as a warning. At
// debug level, in console and JSON output, no form of any secret shows;
// at the default level the warning (a TXT record left behind) shows, at
// warn level, scrubbed.
func TestLegoLogScrubbed(t *testing.T) {
	t.Parallel()
	const kid = "kid-lego-log"
	hmacKey := randomText(t, 32)
	f := newFixture(t, acmetest.WithEAB(kid, hmacKey))
	password := `pw/+ "q"&<x>?` + randomText(t, 12)
	apiToken := "api-" + randomText(t, 16)
	hookToken := "hook-" + randomText(t, 16)
	dnsToken := f.ca.ProviderOptions()[acmetest.OptionAPIToken].Value()
	secrets := []string{password, dnsToken, hmacKey, apiToken, hookToken}

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	api := httptest.NewServer(&reflectingDNSAPI{user: "autocert", password: password, secrets: secrets, ca: f.ca, client: client})
	t.Cleanup(api.Close)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(hook.Close)
	env := append(f.env, "HTTPREQ_TEST_ENDPOINT="+api.URL, "HTTPREQ_TEST_PASSWORD="+password,
		"TEST_EAB_HMAC="+hmacKey, "TEST_API_TOKEN="+apiToken, "TEST_HOOK_URL="+hook.URL+"/hooks/"+hookToken)

	tests := []struct {
		name  string
		flags []string
		json  bool
		debug bool
	}{
		{"console, debug", []string{"-log-level", "debug"}, false, true},
		{"json, debug", []string{"-log-level", "debug", "-log-format", "json"}, true, true},
		{"console, default level", nil, false, false},
		{"json, default level", []string{"-log-format", "json"}, true, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			text := fmt.Sprintf(`autocert:
  provider: httpreq
  email: admin@example.com
  domains: [lego-log-%[1]d.example.com]
  cert_path: certs/main.crt
  key_path: certs/main.key
  acme_key_path: certs/acme.key
  ca_dir_url: %[2]s
  ca_certs: [%[3]s]
  resolvers: [%[4]s]
  eab_kid: %[5]s
  eab_hmac: ${TEST_EAB_HMAC}
  options:
    endpoint: ${HTTPREQ_TEST_ENDPOINT}
    username: autocert
    password: ${HTTPREQ_TEST_PASSWORD}
  extra:
    - provider: acmetest
      domains: [lego-log-extra-%[1]d.example.com]
      cert_path: certs/extra.crt
      key_path: certs/extra.key
      options:
        api_url: ${ACMETEST_API_URL}
        api_token: ${ACMETEST_API_TOKEN}
command:
  api:
    listen: 127.0.0.1:0
    token: ${TEST_API_TOKEN}
  webhooks:
    - url: ${TEST_HOOK_URL}
      format: json
`, i, f.ca.DirectoryURL(), f.ca.CACertFile(), f.ca.DNSAddr(), kid)
			if err := os.WriteFile(filepath.Join(dir, "autocert.yml"), []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			r := run(t, dir, env, append(tt.flags, "obtain")...)
			wantExit(t, r, exitOK, "obtain")
			out := r.stdout + r.stderr
			checkNoForm(t, secrets, out)

			var warning string
			for _, line := range strings.Split(r.stderr, "\n") {
				if !strings.Contains(line, "cleaning up failed") {
					continue
				}
				if tt.json {
					var entry map[string]any
					if err := json.Unmarshal([]byte(line), &entry); err != nil {
						t.Fatalf("not a JSON line: %q", line)
					}
					// What a program reading the log sees, decoded.
					for k, v := range entry {
						checkNoForm(t, secrets, fmt.Sprintf("%s=%v", k, v))
					}
					if entry["level"] != "warn" || entry["component"] != "lego" {
						t.Errorf("lego's warning logged as %v", entry)
					}
				} else if !strings.Contains(line, " WRN ") {
					t.Errorf("lego's warning not at warn level: %q", line)
				}
				warning = line
			}
			if warning == "" {
				t.Fatalf("lego's warning about the failed clean-up is not shown:\n%s", r.stderr)
			}
			if !strings.Contains(warning, "[REDACTED]") || strings.Contains(warning, "[WARN]") {
				t.Errorf("warning %q: want the secrets shown as [REDACTED], and no [WARN] prefix", warning)
			}
			// lego's [INFO] lines are debug lines.
			if shown := strings.Contains(r.stderr, "acme: Obtaining bundled SAN certificate"); shown != tt.debug {
				t.Errorf("lego's info lines shown: %v, want %v:\n%s", shown, tt.debug, r.stderr)
			}
			if strings.Contains(r.stderr, "[INFO]") {
				t.Errorf("lego's [INFO] prefix kept (the level says it):\n%s", r.stderr)
			}
		})
	}
}

// checkNoForm fails the test when out holds a form of a secret.
func checkNoForm(t *testing.T, secrets []string, out string) {
	t.Helper()
	for i, s := range secrets {
		for _, form := range reflectedForms(s) {
			if strings.Contains(out, form) {
				t.Errorf("the output shows secret %d as %q:\n%s", i, form, out)
				return
			}
		}
	}
}
