// Package httpapi serves the HTTP API of an autocert Provider, as the
// "autocert run" command does when it is configured to:
//
//   - GET /api/v1/cert/info: the certificates, as a JSON list of
//     CertStatus (the seed's certificate information, snake_case, with the
//     provider name, the configured domains, the next renewal and the last
//     failure);
//   - GET /api/v1/cert/renew: forces the renewal of every certificate. Over
//     a WebSocket it streams the progress as JSON Messages, the last of
//     type "result" with the outcome per certificate; a plain request (GET
//     or POST, without the WebSocket upgrade) gets a RenewResponse once the
//     renewal has finished: 200 when every certificate was renewed, 500
//     when one failed, 409 when there is nothing to renew;
//   - GET /metrics: Prometheus metrics (see the Metric constants), from a
//     registry of the handler's own;
//   - GET /: the status page for a browser (PathPage), one HTML page with
//     its style and script inline, which lists the certificates from the
//     info endpoint and renews them through the stream.
//
// Every endpoint but the page requires "Authorization: Bearer <token>"
// when a token is set; the comparison takes constant time. The renewal
// stream also takes the token as a WebSocket subprotocol (see
// Subprotocol), as a browser can send it. The page is served without the
// token: it holds no data, and asks for the token in a form. Without a
// token the API is open: serve it on loopback only. No response holds a
// secret: DNS provider credentials and EAB keys never leave the Provider,
// and its error messages have them removed.
//
// Progress and renewal counters come from an Events given to both the
// Provider (autocert.WithProgress, autocert.WithNotifier) and the handler.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// Paths of the endpoints.
const (
	PathPage    = "/" // the status page
	PathInfo    = "/api/v1/cert/info"
	PathRenew   = "/api/v1/cert/renew"
	PathMetrics = "/metrics"
)

// Options configures the handler.
type Options struct {
	// Token is the bearer token every request but that of the status
	// page must present. Empty: no authentication, for a listener on
	// loopback only.
	Token string
	// Events is the Events given to the Provider. Without it, the renewal
	// stream has no progress lines (only the result) and /metrics has no
	// renewal counters or durations.
	Events *Events
	// Logger receives a line per refused request and per forced renewal;
	// the zero Logger discards them.
	Logger zerolog.Logger
}

// streamBuffer is how many messages a renewal stream holds for a slow
// client before it misses some.
const streamBuffer = 1024

// writeTimeout bounds the sending of one message of a renewal stream.
const writeTimeout = 10 * time.Second

type handler struct {
	p      *autocert.Provider
	opts   Options
	token  [sha256.Size]byte
	mux    *http.ServeMux
	logger zerolog.Logger

	statusPage statusPage
	// crossOrigin refuses a renewal asked by another web site's page
	// (a form posted, an image loaded from the API's address), which a
	// browser on the API's host would otherwise send: the API is often
	// open on loopback, without a token.
	crossOrigin *http.CrossOriginProtection
}

// New returns the handler of the API of p. It keeps no state outside the
// returned value: each handler has its own Prometheus registry.
func New(p *autocert.Provider, opts Options) http.Handler {
	h := &handler{p: p, opts: opts, token: sha256.Sum256([]byte(opts.Token)), mux: http.NewServeMux(), logger: opts.Logger, statusPage: newPage(),
		crossOrigin: http.NewCrossOriginProtection()}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(p, opts.Events))
	h.mux.HandleFunc("GET "+PathPage+"{$}", h.page)
	h.mux.HandleFunc("GET "+PathInfo, h.info)
	h.mux.HandleFunc("GET "+PathRenew, h.renew)
	h.mux.HandleFunc("POST "+PathRenew, h.renew)
	h.mux.Handle("GET "+PathMetrics, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return h
}

// ServeHTTP refuses a renewal asked from another origin, checks the
// token, then serves the request.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == PathRenew {
		// A GET renews too: check it as the state-changing request it is.
		asked := *r
		asked.Method = http.MethodPost
		if err := h.crossOrigin.Check(&asked); err != nil {
			h.logger.Warn().Str("remote", r.RemoteAddr).Str("origin", r.Header.Get("Origin")).
				Str("fetch_site", r.Header.Get("Sec-Fetch-Site")).Msg("API renewal refused: asked by a page of another origin")
			writeJSON(w, http.StatusForbidden, errorBody{"renewal refused: the request comes from a page of another origin"})
			return
		}
	}
	if h.opts.Token != "" && !isPage(r) && !h.authorized(r) {
		h.logger.Warn().Str("remote", r.RemoteAddr).Str("path", r.URL.Path).Msg("API request refused: missing or wrong bearer token")
		w.Header().Set("WWW-Authenticate", `Bearer realm="autocert"`)
		writeJSON(w, http.StatusUnauthorized, errorBody{"missing or wrong bearer token"})
		return
	}
	h.mux.ServeHTTP(w, r)
}

// authorized compares the request's bearer token, from its Authorization
// header or else its WebSocket subprotocol, with the configured one in
// constant time (of hashes, so the length does not show either).
func (h *handler) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		token = strings.TrimSpace(token)
	} else if token, ok = subprotocolToken(r); !ok {
		return false
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], h.token[:]) == 1
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// info serves the list of certificates.
func (h *handler) info(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, Statuses(h.p))
}

// Result is the outcome of a forced renewal for one certificate.
type Result struct {
	Provider string `json:"provider"`
	// OK is true when a new certificate was obtained and is served.
	OK bool `json:"ok"`
	// Error says why it failed.
	Error string `json:"error,omitempty"`
	// Serial and NotAfter (Unix seconds) are those of the certificate
	// served after the renewal.
	Serial   string `json:"serial,omitempty"`
	NotAfter int64  `json:"not_after,omitempty"`
}

// RenewResponse is the body answering a plain request to renew.
type RenewResponse struct {
	Results []Result `json:"results"`
	// Error is set when nothing was renewed, and says why.
	Error string `json:"error,omitempty"`
}

// errNothingToRenew is the answer when every certificate is "local".
const errNothingToRenew = "nothing to renew: no certificate is managed through ACME or pseudo"

// start forces the renewal of every certificate, or joins the forced
// renewal already running. It returns false when there is nothing to
// renew.
func (h *handler) start() bool {
	if h.p.ForceExpiryAll() {
		h.logger.Info().Msg("forced renewal of every certificate requested through the API")
		return true
	}
	for _, st := range h.p.RenewalStatus() {
		if st.Forced != nil && st.Forced.Finished.IsZero() {
			return true
		}
	}
	return false
}

// results returns the outcome of the last forced renewal per certificate.
func (h *handler) results() []Result {
	served := map[string]autocert.CertInfo{}
	if infos, err := h.p.GetCertInfos(); err == nil {
		for _, ci := range infos {
			served[ci.Provider] = ci
		}
	}
	out := []Result{}
	for _, st := range h.p.RenewalStatus() {
		if st.Forced == nil {
			continue
		}
		r := Result{Provider: st.Provider, OK: !st.Forced.Finished.IsZero() && st.Forced.Err == nil, Error: st.Forced.Error}
		if ci, ok := served[st.Provider]; ok {
			r.Serial, r.NotAfter = ci.Serial, ci.NotAfter
		}
		out = append(out, r)
	}
	return out
}

func allOK(results []Result) bool {
	for _, r := range results {
		if !r.OK {
			return false
		}
	}
	return true
}

// summary is the line of the "result" message.
func summary(results []Result) string {
	var ok, failed []string
	for _, r := range results {
		if r.OK {
			ok = append(ok, r.Provider)
		} else {
			failed = append(failed, r.Provider+" ("+r.Error+")")
		}
	}
	switch {
	case len(failed) == 0:
		return fmt.Sprintf("renewal finished: renewed %s", strings.Join(ok, ", "))
	case len(ok) == 0:
		return fmt.Sprintf("renewal failed: %s", strings.Join(failed, "; "))
	}
	return fmt.Sprintf("renewal finished: renewed %s; failed %s", strings.Join(ok, ", "), strings.Join(failed, "; "))
}

// renew forces a renewal: streamed over a WebSocket when the request asks
// for one, else answered once finished.
func (h *handler) renew(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		h.renewStream(w, r)
		return
	}
	if !h.start() {
		writeJSON(w, http.StatusConflict, RenewResponse{Results: []Result{}, Error: errNothingToRenew})
		return
	}
	if !h.p.WaitRenewalDone(r.Context()) {
		return // the client went away; the renewal goes on
	}
	res := h.results()
	status := http.StatusOK
	if !allOK(res) {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, RenewResponse{Results: res})
}

// renewStream forces a renewal and streams its progress over a WebSocket.
func (h *handler) renewStream(w http.ResponseWriter, r *http.Request) {
	// A browser that offered the token as a subprotocol fails the
	// handshake unless the answer names one it offered: Subprotocol.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{Subprotocol}})
	if err != nil {
		h.logger.Warn().Err(err).Str("remote", r.RemoteAddr).Msg("renewal stream: WebSocket handshake failed")
		return
	}
	defer c.CloseNow()
	// The client sends nothing; reading still handles its close frame
	// and tells when it has gone.
	ctx, cancel := context.WithCancel(c.CloseRead(r.Context()))
	defer cancel()

	var msgs <-chan Message
	if h.opts.Events != nil {
		var unsubscribe func()
		msgs, unsubscribe = h.opts.Events.Subscribe(streamBuffer)
		defer unsubscribe()
	}
	if !h.start() {
		h.send(ctx, c, Message{Type: TypeResult, Time: time.Now(), Line: errNothingToRenew, Results: []Result{}})
		c.Close(websocket.StatusNormalClosure, "nothing to renew")
		return
	}
	done := make(chan struct{})
	go func() {
		h.p.WaitRenewalDone(ctx)
		close(done)
	}()
	for {
		select {
		case m := <-msgs:
			if !h.send(ctx, c, m) {
				return
			}
		case <-done:
			if ctx.Err() != nil {
				return
			}
			// Everything the renewal reported was published before it
			// finished: pass on what is left, then the outcome.
			for {
				select {
				case m := <-msgs:
					if !h.send(ctx, c, m) {
						return
					}
					continue
				default:
				}
				break
			}
			res := h.results()
			if h.send(ctx, c, Message{Type: TypeResult, Time: time.Now(), Line: summary(res), Results: res}) {
				c.Close(websocket.StatusNormalClosure, "renewal finished")
			}
			return
		}
	}
}

// send writes one message; it returns false when the client is gone.
func (h *handler) send(ctx context.Context, c *websocket.Conn, m Message) bool {
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if err := wsjson.Write(wctx, c, m); err != nil {
		h.logger.Debug().Err(err).Msg("renewal stream: client gone")
		return false
	}
	return true
}
