package acmetest

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
)

// Paths of the TXT record API that every Server serves on loopback for the
// "acmetest" DNS provider. Both take a POST of a txtRecord in JSON and the
// header "Authorization: Bearer <api_token>", and answer 204 No Content.
const (
	apiAddTXTPath    = "/txt/add"
	apiRemoveTXTPath = "/txt/remove"
)

// txtRecord is the body of a TXT record API request.
type txtRecord struct {
	FQDN  string `json:"fqdn"`
	Value string `json:"value"`
}

// txtAPI serves the TXT record API of one Server. It remembers the values
// written through it, so that Close can remove what a client left behind
// in the shared DNS server.
type txtAPI struct {
	token string
	dns   *dnsServer

	mu    sync.Mutex
	owned map[txtRecord]int // values added and not yet removed
}

func newTXTAPI(token string, d *dnsServer) *txtAPI {
	return &txtAPI{token: token, dns: d, owned: make(map[txtRecord]int)}
}

func (a *txtAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != apiAddTXTPath && r.URL.Path != apiRemoveTXTPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(a.token)) != 1 {
		http.Error(w, "missing or wrong API token", http.StatusUnauthorized)
		return
	}
	var rec txtRecord
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		http.Error(w, "body is not a JSON TXT record: "+err.Error(), http.StatusBadRequest)
		return
	}
	if strings.Trim(rec.FQDN, ".") == "" || rec.Value == "" {
		http.Error(w, "fqdn and value are required", http.StatusBadRequest)
		return
	}
	rec.FQDN = canonicalName(rec.FQDN)
	if r.URL.Path == apiAddTXTPath {
		a.add(rec)
	} else {
		a.remove(rec)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *txtAPI) add(rec txtRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dns.addTXT(rec.FQDN, rec.Value)
	a.owned[rec]++
}

// remove removes one occurrence of the value. Removing a value that is not
// there succeeds: a clean-up may follow a failed presentation.
func (a *txtAPI) remove(rec txtRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dns.removeTXT(rec.FQDN, rec.Value) && a.owned[rec] > 0 {
		a.owned[rec]--
		if a.owned[rec] == 0 {
			delete(a.owned, rec)
		}
	}
}

// removeAll removes every value written through a and not removed since.
func (a *txtAPI) removeAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for rec, n := range a.owned {
		for range n {
			a.dns.removeTXT(rec.FQDN, rec.Value)
		}
	}
	clear(a.owned)
}
