package dnsproviders_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/autocert-dev/autocert"
	"github.com/go-acme/lego/v4/challenge/dns01"
)

// fakeAPI imitates the record create and delete calls of one DNS host's
// HTTP API: it checks the credentials as the real API expects them and
// writes the records into the zone server, where DNS clients see them.
type fakeAPI struct {
	t     *testing.T
	mu    sync.Mutex
	calls []string // "METHOD path"
	ids   map[string]string
	next  int
}

func (a *fakeAPI) record(r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, r.Method+" "+r.URL.Path)
}

func (a *fakeAPI) newID(fqdn, value string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.next++
	id := fmt.Sprint(a.next)
	a.ids[id] = fqdn + " " + value
	return id
}

func (a *fakeAPI) take(id string) (fqdn, value string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec, ok := a.ids[id]
	delete(a.ids, id)
	fqdn, value, _ = strings.Cut(rec, " ")
	return fqdn, value, ok
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		http.Error(w, "want JSON, got "+ct, http.StatusUnsupportedMediaType)
		return false
	}
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

// cloudflareAPI serves the calls lego's Cloudflare client makes, with a
// scoped API token.
func cloudflareAPI(a *fakeAPI, token string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a.record(r)
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"success":false,"errors":[{"code":9109,"message":"Invalid access token"}]}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/client/v4/zones":
			name := r.URL.Query().Get("name")
			fmt.Fprintf(w, `{"success":true,"result":[{"id":"zone-%s","name":%q}]}`, name, name)
		case r.Method == http.MethodPost && r.URL.Path == "/client/v4/zones/zone-example.com/dns_records":
			var rec struct {
				Type, Name, Content string
				TTL                 int
			}
			if !decode(w, r, &rec) {
				return
			}
			value, quoted := strings.CutPrefix(rec.Content, `"`)
			value, _ = strings.CutSuffix(value, `"`)
			if rec.Type != "TXT" || !quoted || rec.TTL < 120 {
				http.Error(w, fmt.Sprintf("bad record %+v", rec), http.StatusBadRequest)
				return
			}
			id := a.newID(rec.Name, value)
			cloudDNS.setTXT(rec.Name, value, true)
			fmt.Fprintf(w, `{"success":true,"result":{"id":%q,"type":"TXT","name":%q}}`, id, rec.Name)
		case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/client/v4/zones/zone-example.com/dns_records/"):
			fqdn, value, ok := a.take(strings.TrimPrefix(r.URL.Path, "/client/v4/zones/zone-example.com/dns_records/"))
			if !ok {
				http.Error(w, `{"success":false}`, http.StatusNotFound)
				return
			}
			cloudDNS.setTXT(fqdn, value, false)
			fmt.Fprint(w, `{"success":true,"result":{}}`)
		default:
			http.NotFound(w, r)
		}
	}
}

// digitaloceanAPI serves the calls lego's DigitalOcean client makes.
func digitaloceanAPI(a *fakeAPI, token string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a.record(r)
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, `{"id":"Unauthorized","message":"Unable to authenticate you"}`, http.StatusUnauthorized)
			return
		}
		const records = "/v2/domains/example.com/records"
		switch {
		case r.Method == http.MethodPost && r.URL.Path == records:
			var rec struct {
				Type, Name, Data string
				TTL              int
			}
			if !decode(w, r, &rec) {
				return
			}
			if rec.Type != "TXT" || rec.Data == "" || rec.TTL <= 0 {
				http.Error(w, fmt.Sprintf("bad record %+v", rec), http.StatusUnprocessableEntity)
				return
			}
			id := a.newID(rec.Name, rec.Data)
			cloudDNS.setTXT(rec.Name, rec.Data, true)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"domain_record":{"id":%s,"type":"TXT","name":%q,"data":%q}}`, id, rec.Name, rec.Data)
		case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, records+"/"):
			fqdn, value, ok := a.take(strings.TrimPrefix(r.URL.Path, records+"/"))
			if !ok {
				http.Error(w, `{"id":"not_found"}`, http.StatusNotFound)
				return
			}
			cloudDNS.setTXT(fqdn, value, false)
			w.WriteHeader(http.StatusNoContent)
		default:
			http.NotFound(w, r)
		}
	}
}

// httpreqAPI serves the two calls of lego's httpreq protocol, behind
// basic authentication.
func httpreqAPI(a *fakeAPI, user, password string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a.record(r)
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		var msg struct{ FQDN, Value string }
		if r.Method != http.MethodPost || !decode(w, r, &msg) {
			return
		}
		switch r.URL.Path {
		case "/hook/present":
			cloudDNS.setTXT(msg.FQDN, msg.Value, true)
		case "/hook/cleanup":
			cloudDNS.setTXT(msg.FQDN, msg.Value, false)
		default:
			http.NotFound(w, r)
		}
	}
}

// TestCloudAPIsOnTheWire drives the lego providers of HTTP DNS APIs,
// configured only from options, against local servers that imitate the
// vendors' record calls: the credentials and the record must reach the
// wire as the real API expects, the record must then be visible in DNS,
// and cleanup must remove it.
func TestCloudAPIsOnTheWire(t *testing.T) {
	const token = "tok-3f9a1c7e52"
	tests := []struct {
		provider string
		handler  func(*fakeAPI) http.HandlerFunc
		options  func(url string) autocert.Options
		calls    []string
	}{
		{
			provider: "cloudflare",
			handler:  func(a *fakeAPI) http.HandlerFunc { return cloudflareAPI(a, token) },
			options: func(url string) autocert.Options {
				return autocert.Options{"CF_DNS_API_TOKEN": token, "base_url": autocert.Redacted(url + "/client/v4")}
			},
			calls: []string{"GET /client/v4/zones", "POST /client/v4/zones/zone-example.com/dns_records", "DELETE /client/v4/zones/zone-example.com/dns_records/1"},
		},
		{
			provider: "digitalocean",
			handler:  func(a *fakeAPI) http.HandlerFunc { return digitaloceanAPI(a, token) },
			options: func(url string) autocert.Options {
				return autocert.Options{"auth_token": token, "base_url": autocert.Redacted(url), "ttl": "60"}
			},
			calls: []string{"POST /v2/domains/example.com/records", "DELETE /v2/domains/example.com/records/1"},
		},
		{
			provider: "httpreq",
			handler:  func(a *fakeAPI) http.HandlerFunc { return httpreqAPI(a, "acme", token) },
			options: func(url string) autocert.Options {
				return autocert.Options{"endpoint": autocert.Redacted(url + "/hook"), "username": "acme", "HTTPREQ_PASSWORD": token}
			},
			calls: []string{"POST /hook/present", "POST /hook/cleanup"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.provider, func(t *testing.T) {
			api := &fakeAPI{t: t, ids: make(map[string]string)}
			srv := httptest.NewServer(tc.handler(api))
			defer srv.Close()
			opts := tc.options(srv.URL)
			cfg := &autocert.Config{Provider: tc.provider, Email: "admin@example.com", Domains: []string{"example.com"}, Options: opts}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			f, _ := autocert.LookupProvider(tc.provider)
			p, err := f.NewDNSProvider(cfg.Options)
			if err != nil {
				t.Fatal(err)
			}
			const keyAuth = "token.thumbprint"
			info := dns01.GetChallengeInfo("example.com", keyAuth)
			if err := p.Present("example.com", "token", keyAuth); err != nil {
				t.Fatalf("Present: %v", err)
			}
			if got := lookupTXT(t, cloudDNS.addr, info.FQDN); len(got) != 1 || got[0] != info.Value {
				t.Errorf("after Present, TXT %s = %q, want [%s]", info.FQDN, got, info.Value)
			}
			if err := p.CleanUp("example.com", "token", keyAuth); err != nil {
				t.Fatalf("CleanUp: %v", err)
			}
			if got := lookupTXT(t, cloudDNS.addr, info.FQDN); len(got) != 0 {
				t.Errorf("after CleanUp, TXT %s = %q", info.FQDN, got)
			}
			api.mu.Lock()
			defer api.mu.Unlock()
			if strings.Join(api.calls, "\n") != strings.Join(tc.calls, "\n") {
				t.Errorf("API calls:\n%s\nwant:\n%s", strings.Join(api.calls, "\n"), strings.Join(tc.calls, "\n"))
			}
		})
	}
}

// TestWrongCredentialsReported: the API's refusal reaches the caller, and
// the credential does not.
func TestWrongCredentialsReported(t *testing.T) {
	api := &fakeAPI{t: t, ids: make(map[string]string)}
	srv := httptest.NewServer(cloudflareAPI(api, "the-right-token"))
	defer srv.Close()
	f, _ := autocert.LookupProvider("cloudflare")
	const wrong = "wrong-token-8c2d"
	p, err := f.NewDNSProvider(autocert.Options{"auth_token": wrong, "base_url": autocert.Redacted(srv.URL + "/client/v4")})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Present("example.com", "token", "token.thumbprint")
	if err == nil || !strings.Contains(err.Error(), "Invalid access token") {
		t.Fatalf("Present with a wrong token: %v", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Errorf("the token appears in the error: %v", err)
	}
}
