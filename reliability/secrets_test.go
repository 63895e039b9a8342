package reliability_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
	"github.com/autocert-dev/autocert/internal/syncbuf"
	"github.com/autocert-dev/autocert/notify/webhook"
	legolog "github.com/go-acme/lego/v4/log"
	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
)

// secretSet is every secret of a test with the forms in which it must not
// show: as it is, hex or base64 encoded, URL-escaped, JSON-escaped, and
// inside the base64 of an HTTP Basic credential (at each of the three
// offsets base64 distinguishes).
type secretSet struct {
	names map[string]string // form -> which secret, for messages
}

func (s *secretSet) add(name, value string) {
	if s.names == nil {
		s.names = make(map[string]string)
	}
	if len(value) < 8 {
		panic("secret too short to search for: " + name)
	}
	s.names[value] = name
	s.names[hex.EncodeToString([]byte(value))] = name + " (hex)"
	s.names[base64.StdEncoding.EncodeToString([]byte(value))] = name + " (base64)"
	s.names[base64.RawURLEncoding.EncodeToString([]byte(value))] = name + " (base64url)"
	s.names[url.QueryEscape(value)] = name + " (URL-escaped)"
	s.names[url.PathEscape(value)] = name + " (path-escaped)"
	j, _ := json.Marshal(value)
	s.names[strings.Trim(string(j), `"`)] = name + " (JSON)"
	for _, user := range basicUsers {
		s.names[basicAuth(user, value)] = name + " (HTTP Basic of " + user + ")"
	}
}

// basicUsers are user names of one, two and three bytes: with the colon,
// they put a password at each offset modulo 3 in the base64 of an HTTP
// Basic credential.
var basicUsers = []string{"u", "us", "use"}

// basicAuth returns the base64 of an HTTP Basic credential.
func basicAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// addKey adds a private key: its DER (base64, as in a PEM file) and its
// scalar in decimal and hex.
func (s *secretSet) addKey(name string, pemData []byte) {
	b, _ := pem.Decode(pemData)
	if b == nil {
		panic("no PEM key for " + name)
	}
	der := base64.StdEncoding.EncodeToString(b.Bytes)
	// A stretch from the middle of the DER: the whole of it is split into
	// lines in a PEM file.
	s.names[der[len(der)/2:len(der)/2+40]] = name + " (DER)"
	key, err := x509.ParseECPrivateKey(b.Bytes)
	if err != nil {
		k8, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			panic(err)
		}
		key = k8.(*ecdsa.PrivateKey)
	}
	raw, err := key.Bytes()
	if err != nil {
		panic(err)
	}
	s.names[hex.EncodeToString(raw)] = name + " (scalar, hex)"
	s.names[new(big.Int).SetBytes(raw).String()] = name + " (scalar, decimal)"
}

// check fails the test for every secret found in out, which came from
// where.
func (s *secretSet) check(t *testing.T, where, out string) {
	t.Helper()
	for form, name := range s.names {
		if strings.Contains(out, form) {
			t.Errorf("%s shows the %s", where, name)
		}
	}
}

// render returns v in every way a program may print or encode it.
func render(v any) map[string]string {
	out := make(map[string]string)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
		out[verb] = fmt.Sprintf(verb, v)
	}
	j, err := json.Marshal(v)
	out["json"] = string(j) + errText(err)
	j, err = json.MarshalIndent(v, "", " ")
	out["json indent"] = string(j) + errText(err)
	out["yaml"] = func() (s string) {
		defer func() {
			if r := recover(); r != nil {
				s = fmt.Sprint("panic: ", r)
			}
		}()
		y, err := yaml.Marshal(v)
		return string(y) + errText(err)
	}()
	var zl syncbuf.Buffer
	logger := zerolog.New(&zl)
	logger.Info().Interface("interface", v).Any("any", v).Msgf("%v %+v", v, v)
	logger.Info().Fields(map[string]any{"field": v}).Msg("")
	if s, ok := v.(fmt.Stringer); ok {
		logger.Info().Stringer("stringer", s).Msg("")
	}
	if e, ok := v.(error); ok {
		logger.Info().Err(e).AnErr("anerr", e).Msg(e.Error())
	}
	out["zerolog"] = zl.String()
	return out
}

func errText(err error) string {
	if err != nil {
		return " error: " + err.Error()
	}
	return ""
}

// TestSecretsNeverShown renders every public value holding a secret (the
// configuration and its extras, DNS provider options, the EAB key, the
// storage DSN, the ACME account, a webhook notifier, the events, the
// renewal status, lego's configuration, the Provider itself) with the fmt
// verbs, JSON, YAML and zerolog; then runs obtains and renewals with debug
// logging, lego's log included, with a DNS provider that quotes its own
// credentials in its errors and a webhook that fails, and looks for the
// secrets in every log line, error, event, record and file written.
func TestSecretsNeverShown(t *testing.T) {
	var secrets secretSet
	const kid = "kid-secrets"
	hmacKey := randomB64(t, 48)
	secrets.add("EAB HMAC key", hmacKey)
	ca := acmetest.New(t, acmetest.WithEAB(kid, hmacKey))
	dir := t.TempDir()

	cfg := caConfig(ca, dir, "secret.example.com")
	dns := faultyConfig(cfg)
	secrets.add("DNS API token", cfg.Options[acmetest.OptionAPIToken].Value())
	secrets.add("DNS API URL", cfg.Options[acmetest.OptionAPIURL].Value())
	extraOpts := autocert.Options{}
	for k, v := range cfg.Options {
		extraOpts[k] = v
	}
	cfg.Extra = []autocert.ConfigExtra{{
		Domains:  []string{"extra.example.com"},
		CertPath: filepath.Join(dir, "extra.crt"),
		KeyPath:  filepath.Join(dir, "extra.key"),
		Options:  extraOpts,
	}}

	// A webhook whose URL and header carry secrets, and that fails.
	const hookPath, hookToken, hookHeader = "/services/T0000/B0000/hookpathsecret123", "hooktokensecret456", "Bearer hookheadersecret789"
	secrets.add("webhook path", hookPath)
	secrets.add("webhook token", hookToken)
	secrets.add("webhook header", hookHeader)
	hookSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "webhook receiver down", http.StatusInternalServerError)
	}))
	defer hookSrv.Close()
	hook, err := webhook.New(hookSrv.URL+hookPath+"?token="+hookToken,
		webhook.WithHeader("Authorization", hookHeader), webhook.WithRetry(2, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	// One more that cannot connect at all: network errors name the URL.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + l.Addr().String() + hookPath + "?token=" + hookToken
	l.Close()
	deadHook, err := webhook.New(deadURL, webhook.WithRetry(1, 0))
	if err != nil {
		t.Fatal(err)
	}

	// Everything lego and autocert log, at debug level.
	var logs, legoLogs syncbuf.Buffer
	legolog.Logger = log.New(&legoLogs, "", 0)
	t.Cleanup(func() { legolog.Logger = log.New(io.Discard, "", 0) })
	events := &recorder{}
	progress := &progressLog{}
	user, legoCfg, err := cfg.GetLegoConfig()
	if err != nil {
		t.Fatal(err)
	}
	defer legoCfg.HTTPClient.CloseIdleConnections()
	p, err := autocert.NewProvider(cfg, user, legoCfg,
		autocert.WithLogger(zerolog.New(&logs).Level(zerolog.TraceLevel)),
		autocert.WithNotifier(events), autocert.WithNotifier(hook), autocert.WithNotifier(deadHook),
		autocert.WithProgress(progress.add))
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	p.PrintCertExpiriesAll()
	force := func() {
		p.ForceExpiryAll()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p.WaitRenewalDone(ctx)
	}
	force()
	// The DNS provider now fails, quoting its credentials (as some vendor
	// libraries do) as they are and in the forms an API reflects them: the
	// secret must be scrubbed everywhere.
	token := cfg.Options[acmetest.OptionAPIToken].Value()
	dns.set(func(f *dnsFaults) {
		f.presentErr = fmt.Errorf("vendor API rejected token %s at %s; hex %s; query ?token=%s; body {\"token\":%q}; Authorization: Basic %s, Basic %s, Basic %s",
			token, cfg.Options[acmetest.OptionAPIURL].Value(), hex.EncodeToString([]byte(token)), url.QueryEscape(token), token,
			basicAuth("u", token), basicAuth("us", token), basicAuth("use", token))
	})
	force()
	status := p.RenewalStatus()
	for _, st := range status {
		if st.Forced == nil || st.Forced.Err == nil {
			t.Fatalf("renewal of %s did not fail: %+v", st.Provider, st)
		}
		errs = append(errs, st.Forced.Err)
	}

	// Key material, once it exists.
	for _, f := range []string{cfg.ACMEKeyPath, cfg.KeyPath, cfg.Extra[0].KeyPath} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		secrets.addKey(filepath.Base(f), data)
	}
	// A storage block with a password (rendered only: no database here).
	withDSN := *cfg
	withDSN.Storage = &autocert.StorageConfig{Type: "postgres", DSN: "postgres://autocert:dsnpassword-0af3@db.internal/autocert"}
	secrets.add("storage DSN", withDSN.Storage.DSN.Value())
	secrets.add("storage password", "dsnpassword-0af3")

	// Configuration errors about secret values.
	for _, doc := range []string{
		"provider: acmetest\nemail: a@example.com\ndomains: [a.example.com]\neab_kid: k\neab_hmac: \"not base64 !! " + hmacKey + "\"\noptions:\n  api_url: " + cfg.Options[acmetest.OptionAPIURL].Value() + "\n  api_token: [" + cfg.Options[acmetest.OptionAPIToken].Value() + "]\n",
		"provider: acmetest\nemail: a@example.com\ndomains: [a.example.com]\noptions:\n  api_url: \"not a url " + cfg.Options[acmetest.OptionAPIToken].Value() + "\"\n  api_tokn: " + hmacKey + "\n",
		"storage:\n  type: postgress\n  dsn: " + withDSN.Storage.DSN.Value() + "\n",
	} {
		if _, err := autocert.ParseConfig([]byte(doc)); err == nil {
			t.Fatalf("config accepted:\n%s", doc)
		} else {
			errs = append(errs, err)
		}
	}

	// Render every value. lego's configuration without its HTTP client,
	// whose live transport an encoder walking it would race with.
	legoView := *legoCfg
	legoView.HTTPClient = nil
	values := map[string]any{
		"Config": cfg, "Config value": *cfg, "Config with DSN": &withDSN,
		"ConfigExtra": cfg.Extra[0], "ConfigExtra pointer": &cfg.Extra[0],
		"Options": cfg.Options, "Redacted": cfg.EABHmac, "StorageConfig": withDSN.Storage,
		"StorageConfig value": *withDSN.Storage,
		"User":                user, "lego Config": &legoView, "Provider": p,
		"webhook": hook, "dead webhook": deadHook,
		"RenewalStatus": status, "Progress": progress.all,
	}
	if infos, err := p.GetCertInfos(); err == nil {
		values["CertInfo"] = infos
	}
	for i, e := range events.take() {
		values[fmt.Sprintf("event %d (%s)", i, e.Kind())] = e
	}
	for i, e := range errs {
		values[fmt.Sprintf("error %d", i)] = e
		values[fmt.Sprintf("error %d text", i)] = e.Error()
	}
	for name, v := range values {
		for how, out := range render(v) {
			secrets.check(t, name+" rendered with "+how, out)
		}
	}
	secrets.check(t, "the log", logs.String())
	secrets.check(t, "lego's log", legoLogs.String())
	if !strings.Contains(logs.String(), "notification failed") {
		t.Error("the failing webhooks left no trace in the log")
	}

	// Files beside the certificates: records, not keys.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch name := e.Name(); {
		case strings.HasSuffix(name, ".key"):
			continue // the keys themselves
		default:
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				continue
			}
			secrets.check(t, "file "+name, string(data))
		}
	}
	if len(secrets.names) < 20 {
		t.Fatalf("only %d secret forms searched", len(secrets.names))
	}
}

func randomB64(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
