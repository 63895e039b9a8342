package acmetest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// acmeErrorNS prefixes the ACME error types of RFC 8555, section 6.7.
const acmeErrorNS = "urn:ietf:params:acme:error:"

// Problem is an ACME error (RFC 8555, section 6.7) that the CA answers
// instead of doing its work, see Server.FailOrders.
type Problem struct {
	// Type is the ACME error type, either in full
	// ("urn:ietf:params:acme:error:rateLimited") or by its last part
	// ("rateLimited", "serverInternal", "unauthorized"...).
	Type string
	// Detail is the human-readable explanation.
	Detail string
	// Status is the HTTP status code. When zero: 429 for rateLimited, 500
	// for serverInternal, 403 for unauthorized, 400 for anything else.
	Status int
	// RetryAfter, when positive, is sent in a Retry-After header, rounded
	// up to whole seconds.
	RetryAfter time.Duration
}

// typeURN returns the full ACME error type of p.
func (p Problem) typeURN() string {
	if p.Type == "" {
		return acmeErrorNS + "serverInternal"
	}
	if strings.Contains(p.Type, ":") {
		return p.Type
	}
	return acmeErrorNS + p.Type
}

// status returns the HTTP status code of p.
func (p Problem) status() int {
	if p.Status != 0 {
		return p.Status
	}
	switch strings.TrimPrefix(p.typeURN(), acmeErrorNS) {
	case "rateLimited":
		return http.StatusTooManyRequests
	case "serverInternal":
		return http.StatusInternalServerError
	case "unauthorized":
		return http.StatusForbidden
	default:
		return http.StatusBadRequest
	}
}

// write sends p as an application/problem+json response. nonce, when not
// empty, is sent as the Replay-Nonce the client uses for its next request.
func (p Problem) write(w http.ResponseWriter, nonce string) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=0, no-cache")
	if nonce != "" {
		h.Set("Replay-Nonce", nonce)
	}
	if p.RetryAfter > 0 {
		secs := (p.RetryAfter + time.Second - 1) / time.Second
		h.Set("Retry-After", strconv.FormatInt(int64(secs), 10))
	}
	status := p.status()
	body, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Detail string `json:"detail,omitempty"`
		Status int    `json:"status"`
	}{p.typeURN(), p.Detail, status})
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
