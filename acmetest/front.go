package acmetest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/letsencrypt/pebble/v2/acme"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// Paths of Pebble's ACME endpoints (its directory lists them).
const (
	noncePath       = "/nonce-plz"
	newAccountPath  = "/sign-me-up"
	newOrderPath    = "/order-plz"
	challengePath   = "/chalZ/"
	finalizePath    = "/finalize-order/"
	renewalInfoPath = "/draft-ietf-acme-ari-03/renewalInfo/"
)

// How long the front waits for the CA's asynchronous work (a challenge
// validation, the signing of a certificate) before answering anyway.
const asyncWait = 10 * time.Second

// front is the HTTP handler in front of Pebble. It injects the faults of a
// Server, keeps its counters, makes profile-less orders deterministic, and
// answers a challenge or finalization request only once the CA has done the
// work it started, so that clients never sleep while polling.
type front struct {
	pebble   http.Handler
	store    *db.MemoryStore
	profiles []string // sorted profile names
	// noProfiles hides the profiles from the directory (WithoutProfiles).
	noProfiles bool
	stop       chan struct{} // closed when the Server closes

	accountMu sync.Mutex // serialises new-account requests

	mu            sync.Mutex
	nonceReject   float64
	orderFault    fault
	finalizeFault fault
	ariFault      fault
	ariRetry      map[string]time.Duration // Retry-After by certificate serial (decimal)
	delay         time.Duration            // before answering any request
	accounts      int
	orders        []Order
	ariRequests   int
	// The simulated rate limits (nil: none), their clock, and the sets of
	// names of the certificates issued (for the renewal exemption).
	orderLimit *limiter
	certLimit  *limiter
	now        func() time.Time
	issued     map[string]bool

	pending atomic.Int64 // requests being answered
}

// fault is a problem to answer to the next n requests of one kind.
type fault struct {
	n int
	p Problem
}

// take consumes one occurrence of f. The caller holds the front's lock.
func (f *fault) take() (Problem, bool) {
	if f.n <= 0 {
		return Problem{}, false
	}
	f.n--
	return f.p, true
}

// ServeHTTP reads the body of a POST, may reject its nonce, and routes the
// requests the front takes part in; Pebble answers the others directly.
func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.pending.Add(1)
	defer f.pending.Add(-1)
	var body []byte
	if r.Method == http.MethodPost {
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, 1<<20)); err != nil {
			Problem{Type: "malformed", Detail: "reading request body: " + err.Error()}.write(w, "")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	// Held back once the body is read: from then on the server notices
	// when the client hangs up, and ends the request's context.
	if !f.wait(r.Context()) {
		// The client gave up, or the Server closes: never an empty 200.
		Problem{Type: "serverInternal", Detail: "acmetest: request dropped while delayed", Status: http.StatusServiceUnavailable}.write(w, "")
		return
	}
	if r.Method == http.MethodPost {
		if f.rejectNonce() {
			Problem{
				Type:   "badNonce",
				Detail: "JWS has an invalid anti-replay nonce (rejected on purpose by acmetest)",
			}.write(w, f.freshNonce())
			return
		}
		switch {
		case r.URL.Path == newOrderPath:
			f.newOrder(w, r, body)
			return
		case r.URL.Path == newAccountPath:
			f.newAccount(w, r)
			return
		case strings.HasPrefix(r.URL.Path, challengePath):
			f.challenge(w, r)
			return
		case strings.HasPrefix(r.URL.Path, finalizePath):
			f.finalize(w, r)
			return
		}
	}
	if r.Method == http.MethodGet && r.URL.Path == wfe.DirectoryPath && f.noProfiles {
		f.directoryWithoutProfiles(w, r)
		return
	}
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, renewalInfoPath) {
		f.renewalInfo(w, r)
		return
	}
	f.pebble.ServeHTTP(w, r)
}

// directoryWithoutProfiles answers Pebble's directory with the profiles
// removed from its meta object.
func (f *front) directoryWithoutProfiles(w http.ResponseWriter, r *http.Request) {
	resp := httptest.NewRecorder()
	f.pebble.ServeHTTP(resp, r)
	var dir map[string]any
	if resp.Code != http.StatusOK || json.Unmarshal(resp.Body.Bytes(), &dir) != nil {
		copyResponse(w, resp)
		return
	}
	if meta, ok := dir["meta"].(map[string]any); ok {
		delete(meta, "profiles")
	}
	body, err := json.MarshalIndent(dir, "", "  ")
	if err != nil {
		Problem{Type: "serverInternal", Detail: "acmetest: encoding the directory: " + err.Error()}.write(w, "")
		return
	}
	maps.Copy(w.Header(), resp.Header())
	w.Header().Del("Content-Length")
	w.WriteHeader(resp.Code)
	_, _ = w.Write(body)
}

// wait holds a request back for the delay set by SetDelay. It reports
// false when the request ended or the Server closed meanwhile.
func (f *front) wait(ctx context.Context) bool {
	f.mu.Lock()
	d := f.delay
	f.mu.Unlock()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-f.stop:
		return false
	}
}

// rejectNonce draws whether to reject the current request's nonce.
func (f *front) rejectNonce() bool {
	f.mu.Lock()
	p := f.nonceReject
	f.mu.Unlock()
	return p > 0 && rand.Float64() < p
}

// freshNonce asks Pebble for a nonce that its next request can use.
func (f *front) freshNonce() string {
	req, err := http.NewRequest(http.MethodHead, noncePath, nil)
	if err != nil {
		return ""
	}
	req.Header.Set("User-Agent", "acmetest")
	rec := httptest.NewRecorder()
	f.pebble.ServeHTTP(rec, req)
	return rec.Header().Get("Replay-Nonce")
}

// newOrder records a new-order request, then answers an injected fault,
// rejects a profile-less order when the CA has several profiles, or lets
// Pebble create the order.
func (f *front) newOrder(w http.ResponseWriter, r *http.Request, body []byte) {
	var payload struct {
		Identifiers []struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"identifiers"`
		Profile  string `json:"profile"`
		Replaces string `json:"replaces"`
	}
	if err := decodeJWSPayload(body, &payload); err != nil {
		// Pebble answers malformed requests itself.
		f.pebble.ServeHTTP(w, r)
		return
	}
	rec := Order{Profile: payload.Profile, Replaces: payload.Replaces}
	for _, id := range payload.Identifiers {
		rec.Names = append(rec.Names, id.Value)
	}
	slices.Sort(rec.Names)

	f.mu.Lock()
	p, failed := f.orderFault.take()
	f.mu.Unlock()
	if !failed && payload.Profile == "" && len(f.profiles) > 1 {
		p, failed = Problem{
			Type: "malformed",
			Detail: fmt.Sprintf("acmetest: the order names no profile and this CA has several: %s; name one",
				quoteAll(f.profiles)),
		}, true
	}
	if !failed {
		f.mu.Lock()
		p, failed = f.rateLimitLocked(jwsAccountID(body), rec.Names)
		f.mu.Unlock()
	}
	if failed {
		rec.Problem = p.typeURN()
		f.record(rec)
		p.write(w, f.freshNonce())
		return
	}

	f.expireIssuedAuthorizations(body, payload.Identifiers)
	resp := httptest.NewRecorder()
	f.pebble.ServeHTTP(resp, r)
	if resp.Code != http.StatusCreated {
		var prob struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(resp.Body.Bytes(), &prob)
		rec.Problem = prob.Type
		if rec.Problem == "" {
			rec.Problem = "HTTP " + strconv.Itoa(resp.Code)
		}
	}
	f.record(rec)
	copyResponse(w, resp)
}

// expireIssuedAuthorizations makes the valid authorizations of the
// ordering account for the identifiers, whose orders were issued, expire
// now, so that Pebble cannot reuse them for the new order: every order is
// validated. (Pebble reuses a valid authorization with a probability of
// one in a hundred even with PEBBLE_AUTHZREUSE=0, as it compares a random
// number in [0, 100) with "greater than" the percentage.) An authorization
// of an order still in progress is left alone.
func (f *front) expireIssuedAuthorizations(jws []byte, ids []struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}) {
	account := jwsAccountID(jws)
	if account == "" {
		return
	}
	for _, id := range ids {
		ident := acme.Identifier{Type: id.Type, Value: strings.ToLower(id.Value)}
		for range 100 {
			authz := f.store.FindValidAuthorization(account, ident)
			if authz == nil {
				break
			}
			// Pebble locks an order before its authorizations: never
			// hold both here.
			authz.RLock()
			order := authz.Order
			authz.RUnlock()
			issued := false
			if order != nil {
				order.RLock()
				issued = order.CertificateObject != nil
				order.RUnlock()
			}
			if !issued {
				break
			}
			authz.Lock()
			authz.ExpiresDate = time.Now().Add(-time.Second)
			authz.Unlock()
		}
	}
}

// jwsAccountID returns the account ID in the "kid" (the account URL,
// ".../my-account/<id>") of a JWS in flattened JSON serialization; "" when
// there is none.
func jwsAccountID(jws []byte) string {
	var msg struct {
		Protected string `json:"protected"`
	}
	if json.Unmarshal(jws, &msg) != nil {
		return ""
	}
	header, err := base64.RawURLEncoding.DecodeString(msg.Protected)
	if err != nil {
		return ""
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if json.Unmarshal(header, &h) != nil {
		return ""
	}
	_, id, ok := strings.Cut(h.Kid, "/my-account/")
	if !ok {
		return ""
	}
	return id
}

func (f *front) record(o Order) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.orders = append(f.orders, o)
}

// newAccount counts the accounts Pebble creates. The requests are served
// one at a time: Pebble answers a new-account request for an existing key
// by writing into the shared account record, which two clients of one
// account (two Providers sharing an account key) would race on.
func (f *front) newAccount(w http.ResponseWriter, r *http.Request) {
	resp := httptest.NewRecorder()
	f.accountMu.Lock()
	f.pebble.ServeHTTP(resp, r)
	f.accountMu.Unlock()
	if resp.Code == http.StatusCreated {
		f.mu.Lock()
		f.accounts++
		f.mu.Unlock()
	}
	copyResponse(w, resp)
}

// challenge answers a challenge request once the validation it started is
// over, with the challenge's final status in the body: lego then goes on at
// once (valid) or reports the error (invalid) instead of polling the
// authorization with a back-off of several seconds.
func (f *front) challenge(w http.ResponseWriter, r *http.Request) {
	resp := httptest.NewRecorder()
	f.pebble.ServeHTTP(resp, r)
	if resp.Code == http.StatusOK {
		if chal := f.store.GetChallengeByID(strings.TrimPrefix(r.URL.Path, challengePath)); chal != nil {
			done := f.waitUntil(r.Context(), func() bool {
				chal.RLock()
				defer chal.RUnlock()
				return chal.Status != acme.StatusProcessing
			})
			if done {
				chal.RLock()
				body, err := json.Marshal(chal.Challenge)
				chal.RUnlock()
				if err == nil {
					resp.Body = bytes.NewBuffer(body)
				}
			}
		}
	}
	copyResponse(w, resp)
}

// finalize answers a finalization request once the certificate is signed
// and stored, so that the client's first look at the order finds it valid.
func (f *front) finalize(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	p, failed := f.finalizeFault.take()
	f.mu.Unlock()
	if failed {
		p.write(w, f.freshNonce())
		return
	}
	resp := httptest.NewRecorder()
	f.pebble.ServeHTTP(resp, r)
	if resp.Code == http.StatusOK {
		id := strings.TrimPrefix(r.URL.Path, finalizePath)
		var names []string
		f.waitUntil(r.Context(), func() bool {
			order := f.store.GetOrderByID(id)
			if order == nil {
				return true
			}
			order.RLock()
			cert, replaces := order.CertificateObject, order.Replaces
			if cert != nil {
				// Issued: a later order for the same names is a renewal.
				names = names[:0]
				for _, id := range order.Identifiers {
					names = append(names, id.Value)
				}
			}
			order.RUnlock()
			if cert == nil {
				return false
			}
			// Pebble indexes the order by serial right after signing; a
			// renewal naming this certificate in "replaces" needs it.
			if _, err := f.store.GetOrderByIssuedSerial(cert.ID); err != nil {
				return false
			}
			// Then it marks the certificate this order replaces, which
			// the next order naming that certificate reads (without the
			// order's lock): wait for it, under the lock.
			return f.replacedMarked(replaces)
		})
		if len(names) > 0 {
			f.mu.Lock()
			f.issued[nameSetKey(names)] = true
			f.mu.Unlock()
		}
	}
	copyResponse(w, resp)
}

// replacedMarked reports whether the order that issued the certificate
// named by the ARI certificate ID replaces (none: "") is marked replaced,
// or cannot be found.
func (f *front) replacedMarked(replaces string) bool {
	if replaces == "" {
		return true
	}
	serial, ok := ariSerial(replaces)
	if !ok {
		return true
	}
	orig, err := f.store.GetOrderByIssuedSerial(hex.EncodeToString(serial.Bytes()))
	if err != nil {
		return true
	}
	orig.RLock()
	defer orig.RUnlock()
	return orig.IsReplaced
}

// renewalInfo answers an injected fault or lets Pebble answer, with the
// Retry-After chosen by SetRenewalWindow.
func (f *front) renewalInfo(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.ariRequests++
	p, failed := f.ariFault.take()
	f.mu.Unlock()
	if failed {
		p.write(w, "")
		return
	}
	resp := httptest.NewRecorder()
	f.pebble.ServeHTTP(resp, r)
	if resp.Code == http.StatusOK {
		if serial, ok := ariSerial(strings.TrimPrefix(r.URL.Path, renewalInfoPath)); ok {
			f.mu.Lock()
			d, set := f.ariRetry[serial.String()]
			f.mu.Unlock()
			if set {
				resp.Header().Set("Retry-After", strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10))
			}
		}
	}
	copyResponse(w, resp)
}

// waitUntil polls cond until it holds, the request ends, the Server
// closes, or asyncWait passes. It reports whether cond held.
func (f *front) waitUntil(ctx context.Context, cond func() bool) bool {
	deadline := time.NewTimer(asyncWait)
	defer deadline.Stop()
	pause := 500 * time.Microsecond
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-f.stop:
			return false
		case <-deadline.C:
			return false
		case <-time.After(pause):
		}
		pause = min(2*pause, 10*time.Millisecond)
	}
}

// ariSerial returns the serial number in an ARI certificate ID
// ("<authority key id>.<serial>", both base64url).
func ariSerial(certID string) (*big.Int, bool) {
	_, enc, ok := strings.Cut(certID, ".")
	if !ok {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || len(b) == 0 {
		return nil, false
	}
	return new(big.Int).SetBytes(b), true
}

// decodeJWSPayload decodes the payload of a JWS in flattened JSON
// serialization into v, without checking the signature (Pebble does).
func decodeJWSPayload(jws []byte, v any) error {
	var msg struct {
		Payload string `json:"payload"`
	}
	if err := json.Unmarshal(jws, &msg); err != nil {
		return err
	}
	payload, err := base64.RawURLEncoding.DecodeString(msg.Payload)
	if err != nil {
		return err
	}
	return json.Unmarshal(payload, v)
}

// copyResponse sends a recorded response.
func copyResponse(w http.ResponseWriter, resp *httptest.ResponseRecorder) {
	h := w.Header()
	for k, v := range resp.Header() {
		h[k] = v
	}
	h.Del("Content-Length")
	w.WriteHeader(resp.Code)
	_, _ = w.Write(resp.Body.Bytes())
}

// quoteAll returns names quoted and separated by commas.
func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}
