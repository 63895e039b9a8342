package httpapi

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"strings"
)

// WebSocket subprotocols of the renewal stream. A browser cannot set the
// Authorization header of a WebSocket, and a token in the URL would end
// up in logs and in the history: the status page offers two subprotocols
// instead, Subprotocol and SubprotocolTokenPrefix followed by the token in
// unpadded base64url (RFC 4648, section 5), and the server accepts the
// handshake with Subprotocol, never echoing the token. Other clients may
// do the same, or send the Authorization header.
const (
	Subprotocol            = "autocert.v1"
	SubprotocolTokenPrefix = "autocert.token."
)

// The page's three parts, assembled by newPage: the markup holds the
// markers pageStyle and pageScript where the style sheet and the script
// go, inline, so that the page needs no other request than the API's.
var (
	//go:embed page.html
	pageHTML string
	//go:embed page.css
	pageCSS string
	//go:embed page.js
	pageJS string
)

const (
	pageStyle  = "/*STYLE*/"
	pageScript = "/*SCRIPT*/"
)

// statusPage is the status page, built once per handler.
type statusPage struct {
	body []byte
	csp  string
}

// newPage assembles the page and its Content-Security-Policy: nothing may
// load but the inline style and script whose hashes it names, the page
// may connect only to its own origin (the API, and its WebSocket), and no
// other site may frame it.
func newPage() statusPage {
	body := strings.Replace(pageHTML, pageStyle, pageCSS, 1)
	body = strings.Replace(body, pageScript, pageJS, 1)
	csp := strings.Join([]string{
		"default-src 'none'",
		"script-src " + cspHash(pageJS),
		"style-src " + cspHash(pageCSS),
		"connect-src 'self'",
		"img-src data:",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
		"require-trusted-types-for 'script'",
		"trusted-types 'none'",
	}, "; ")
	return statusPage{body: []byte(body), csp: csp}
}

// cspHash is the source expression allowing the inline element with
// content s.
func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// isPage reports whether r asks for the status page, which is served
// without the token: it holds no data, and asks for the token itself.
func isPage(r *http.Request) bool {
	return r.URL.Path == PathPage && (r.Method == http.MethodGet || r.Method == http.MethodHead)
}

// page serves the status page.
func (h *handler) page(w http.ResponseWriter, _ *http.Request) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", h.statusPage.csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	_, _ = w.Write(h.statusPage.body)
}

// subprotocolToken returns the token a WebSocket handshake to the renewal
// stream offers as a subprotocol, if it offers one.
func subprotocolToken(r *http.Request) (string, bool) {
	if r.URL.Path != PathRenew || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return "", false
	}
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			enc, ok := strings.CutPrefix(strings.TrimSpace(p), SubprotocolTokenPrefix)
			if !ok {
				continue
			}
			token, err := base64.RawURLEncoding.DecodeString(enc)
			if err != nil {
				return "", false
			}
			return string(token), true
		}
	}
	return "", false
}
