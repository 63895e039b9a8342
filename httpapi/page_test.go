package httpapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/autocert-dev/autocert/httpapi"
	"github.com/coder/websocket"
)

var inline = regexp.MustCompile(`(?s)<(script|style)\b([^>]*)>(.*?)</(?:script|style)>`)

// TestStatusPage: GET / serves the page without the token, with a CSP
// that names the hash of each inline script and style sheet and allows
// nothing else to load; the page refers to no other resource. The rest
// of the API still wants the token.
func TestStatusPage(t *testing.T) {
	f := newFixture(t)
	open := httptest.NewServer(httpapi.New(f.p, httpapi.Options{}))
	defer open.Close()

	for _, tc := range []struct {
		name        string
		url         string
		other, post int // GET of an unknown path, POST /
		infoWithout int
	}{
		{"token", f.srv.URL, http.StatusUnauthorized, http.StatusUnauthorized, http.StatusUnauthorized},
		{"open", open.URL, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(tc.url + "/")
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
				t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			f.noSecret(t, "page", body)
			csp := resp.Header.Get("Content-Security-Policy")
			for _, d := range []string{"default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'", "require-trusted-types-for 'script'"} {
				if !strings.Contains(csp, d) {
					t.Errorf("CSP %q lacks %q", csp, d)
				}
			}
			if strings.Contains(csp, "unsafe") {
				t.Errorf("CSP %q allows something unsafe", csp)
			}
			blocks := inline.FindAllStringSubmatch(string(body), -1)
			if len(blocks) != 2 {
				t.Fatalf("%d inline scripts and style sheets, want one of each", len(blocks))
			}
			for _, m := range blocks {
				sum := sha256.Sum256([]byte(m[3]))
				src := m[1] + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
				if !strings.Contains(csp, src) || m[2] != "" {
					t.Errorf("CSP %q does not allow the inline %s (want %s)", csp, m[1], src)
				}
			}
			for _, ref := range regexp.MustCompile(`(?:src|href)\s*=\s*"([^"]*)"`).FindAllStringSubmatch(string(body), -1) {
				if ref[1] != "data:," {
					t.Errorf("the page loads %q", ref[1])
				}
			}
			for _, h := range []string{"X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"} {
				if resp.Header.Get(h) == "" {
					t.Errorf("header %s missing", h)
				}
			}

			resp, err = http.Head(tc.url + "/")
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("HEAD /: %v %v", resp.Status, err)
			}
			resp.Body.Close()
			for _, c := range []struct {
				method, path string
				want         int
			}{
				{http.MethodGet, "/other", tc.other},
				{http.MethodPost, "/", tc.post},
				{http.MethodGet, httpapi.PathInfo, tc.infoWithout},
			} {
				req, _ := http.NewRequest(c.method, tc.url+c.path, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != c.want {
					t.Errorf("%s %s without a token: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
				}
			}
		})
	}
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRenewSubprotocol: the renewal stream takes the token as a WebSocket
// subprotocol, as a browser sends it, and answers with Subprotocol alone
// (never the token); a wrong or malformed token, or one in the URL's
// query, is refused before the upgrade and starts nothing.
func TestRenewSubprotocol(t *testing.T) {
	f := newFixture(t)
	ws := "ws" + strings.TrimPrefix(f.srv.URL, "http") + httpapi.PathRenew
	enc := func(s string) string {
		return httpapi.SubprotocolTokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(s))
	}
	orders := len(f.ca.Orders())
	for _, tc := range []struct {
		name   string
		url    string
		protos []string
	}{
		{"wrong token", ws, []string{httpapi.Subprotocol, enc("wrong")}},
		{"token with a suffix", ws, []string{httpapi.Subprotocol, enc(token + "x")}},
		{"not base64url", ws, []string{httpapi.Subprotocol, httpapi.SubprotocolTokenPrefix + "a+b/c="}},
		{"the token unencoded", ws, []string{httpapi.Subprotocol, httpapi.SubprotocolTokenPrefix + token}},
		{"no token", ws, []string{httpapi.Subprotocol}},
		{"token in the query", ws + "?token=" + token, []string{httpapi.Subprotocol}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, tc.url, &websocket.DialOptions{Subprotocols: tc.protos})
			if err == nil {
				c.CloseNow()
			}
			if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%v, response %v; want 401", err, resp)
			}
		})
	}
	if n := len(f.ca.Orders()); n != orders {
		t.Fatalf("refused handshakes placed %d orders", n-orders)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, ws, &websocket.DialOptions{Subprotocols: []string{httpapi.Subprotocol, enc(token)}})
	if err != nil {
		t.Fatalf("with the token as a subprotocol: %v", err)
	}
	defer c.CloseNow()
	if got := resp.Header.Values("Sec-WebSocket-Protocol"); len(got) != 1 || got[0] != httpapi.Subprotocol || c.Subprotocol() != httpapi.Subprotocol {
		t.Errorf("the server answered subprotocol %q, want %q", got, httpapi.Subprotocol)
	}
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		var m httpapi.Message
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		if m.Type == httpapi.TypeResult {
			if len(m.Results) != 2 || !m.Results[0].OK || !m.Results[1].OK {
				t.Errorf("result %s", data)
			}
			break
		}
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("after the result: %v, want a normal close", err)
	}
}
