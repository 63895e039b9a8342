package redact

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// secret has characters that every encoding changes: a space, quotes,
// slashes, a plus, an ampersand, angle brackets.
const secret = `tok/en+9 "q"&<x>=\z`

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestScrubForms: every form of the secret is replaced, in place, with
// the text around it kept.
func TestScrubForms(t *testing.T) {
	s := New(secret)
	b64 := func(enc *base64.Encoding, v string) string { return enc.EncodeToString([]byte(v)) }
	tests := []struct {
		name, form string
		want       string // the form scrubbed; Text when empty
	}{
		{"raw", secret, ""},
		{"hex", hex.EncodeToString([]byte(secret)), ""},
		{"HEX", strings.ToUpper(hex.EncodeToString([]byte(secret))), ""},
		{"query escape", url.QueryEscape(secret), ""},
		{"query escape, lower case", strings.ToLower(url.QueryEscape(secret)), ""},
		{"path escape", url.PathEscape(secret), ""},
		{"JSON", strings.Trim(jsonString(secret), `"`), ""},
		{"JSON without HTML escapes", `tok/en+9 \"q\"&<x>=\\z`, ""},
		{"JSON with escaped slashes", `tok\/en+9 \"q\"&<x>=\\z`, ""},
		{"Go %q", strings.Trim(fmt.Sprintf("%q", secret), `"`), ""},
		{"base64", b64(base64.StdEncoding, secret), ""},
		{"base64 raw", b64(base64.RawStdEncoding, secret), ""},
		{"base64url", b64(base64.URLEncoding, secret), ""},
		{"base64url raw", b64(base64.RawURLEncoding, secret), ""},
		{"basic, user of 7", basic("autocer", secret), "Basic " + Text},
		{"basic, user of 8", basic("autocert", secret), "Basic " + Text},
		{"basic, user of 9", basic("autocerts", secret), "Basic " + Text},
		{"basic, no user", basic("", secret), "Basic " + Text},
		{"base64url of user:secret", b64(base64.RawURLEncoding, "api-user:"+secret), ""},
		{"base64 of a JSON document holding it", b64(base64.StdEncoding, `{"token":"`+secret+`","n":1}`), ""},
		{"base64 part of a token", "eyJhbGciOiJIUzI1NiJ9." + b64(base64.RawURLEncoding, "x"+secret+"yz") + ".c2lnbmF0dXJl",
			"eyJhbGciOiJIUzI1NiJ9." + Text + ".c2lnbmF0dXJl"},
		{"base64 inside a longer run", "QUJD" + b64(base64.StdEncoding, "12"+secret+"3"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := "401 body: {\"error\":\"bad credential " + tt.form + "\"} (retry)"
			scrubbed := tt.want
			if scrubbed == "" {
				scrubbed = Text
			}
			want := "401 body: {\"error\":\"bad credential " + scrubbed + "\"} (retry)"
			if got := s.Scrub(in); got != want {
				t.Errorf("Scrub(%q)\n = %q\nwant %q", in, got, want)
			}
		})
	}
}

// TestScrubCases: several secrets, overlaps, short values, text without
// secrets.
func TestScrubCases(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"no secret given", nil, "token abcd", "token abcd"},
		{"short values are no secret", []string{"abc", "", "60"}, "ttl 60 abc", "ttl 60 abc"},
		{"every occurrence", []string{"s3cret"}, "s3cret and s3cret again", Text + " and " + Text + " again"},
		{"one secret inside another is hidden whole", []string{"abcd", "xxabcdyy"}, "[xxabcdyy] [abcd]", "[" + Text + "] [" + Text + "]"},
		{"overlapping secrets are hidden together", []string{"1234567", "5678901"}, "<12345678901>", "<" + Text + ">"},
		{"adjacent secrets", []string{"aaaa1", "bbbb2"}, "aaaa1bbbb2", Text},
		{"overlapping occurrences of one secret", []string{"abab"}, "ababab.", Text + "."},
		{"several secrets", []string{"first-secret", "second-secret"}, "a=first-secret b=second-secret", "a=" + Text + " b=" + Text},
		{"text without a secret", []string{"first-secret"}, "nothing to see here, dXNlcjpwYXNz", "nothing to see here, dXNlcjpwYXNz"},
		{"base64 run stops at a key", []string{"first-secret"}, "auth=" + base64.StdEncoding.EncodeToString([]byte("u:first-secret")) + "&x=1", "auth=" + Text + "&x=1"},
		{"empty text", []string{"first-secret"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := New(tt.secrets...).Scrub(tt.in); got != tt.want {
				t.Errorf("Scrub(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNilScrubber(t *testing.T) {
	var s *Scrubber
	if !s.Empty() || s.Scrub("abcd") != "abcd" {
		t.Error("the nil Scrubber changed the text")
	}
	if !New("abc").Empty() || New("abcd").Empty() {
		t.Error("Empty")
	}
}

// TestScrubNoAllocation: a line without a secret costs no allocation.
func TestScrubNoAllocation(t *testing.T) {
	s := New(benchSecrets()...)
	line := benchLine
	if n := testing.AllocsPerRun(100, func() { _ = s.Scrub(line) }); n != 0 {
		t.Errorf("%v allocations for a line without a secret", n)
	}
}

func TestDSNSecrets(t *testing.T) {
	tests := []struct {
		dsn  string
		want []string
	}{
		{"", nil},
		{"postgres://autocert:pa%2Fss@db/certs", []string{"postgres://autocert:pa%2Fss@db/certs", "pa/ss"}},
		{"host=db user=autocert password='kv-pass' dbname=certs", []string{"host=db user=autocert password='kv-pass' dbname=certs", "kv-pass"}},
	}
	for _, tt := range tests {
		if got := DSNSecrets(tt.dsn); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("DSNSecrets(%q) = %q, want %q", tt.dsn, got, tt.want)
		}
	}
	// The escaped form of the password, as the DSN holds it, is scrubbed.
	s := New(DSNSecrets("postgres://autocert:pa%2Fss-word@db/certs")...)
	if got := s.Scrub("auth failed for pa%2Fss-word and pa/ss-word"); got != "auth failed for "+Text+" and "+Text {
		t.Errorf("got %q", got)
	}
}

func TestURLSecrets(t *testing.T) {
	tests := []struct {
		url  string
		want []string
	}{
		{"", nil},
		{"https://hooks.slack.com/services/T0AB12CD3/B0XY45ZW6/aBcDeFgHiJkLmNoPqRsTuVwX",
			[]string{"https://hooks.slack.com/services/T0AB12CD3/B0XY45ZW6/aBcDeFgHiJkLmNoPqRsTuVwX", "services/T0AB12CD3/B0XY45ZW6/aBcDeFgHiJkLmNoPqRsTuVwX",
				"T0AB12CD3", "B0XY45ZW6", "aBcDeFgHiJkLmNoPqRsTuVwX"}},
		{"https://gotify.example.com/message?token=AbCdEf123", []string{"https://gotify.example.com/message?token=AbCdEf123", "AbCdEf123"}},
		{"https://ntfy.sh/alerts-topic", []string{"https://ntfy.sh/alerts-topic", "alerts-topic"}},
		{"https://user:hook-pass@example.com/", []string{"https://user:hook-pass@example.com/", "hook-pass"}},
	}
	for _, tt := range tests {
		if got := URLSecrets(tt.url); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("URLSecrets(%q)\n = %q\nwant %q", tt.url, got, tt.want)
		}
	}
}

// FuzzScrub: the secret, its hex, and every base64 encoding of a text
// holding it anywhere, never survive; a text holding no character of the
// secret's forms is left alone.
func FuzzScrub(f *testing.F) {
	f.Add("s3cret-token", "user:", "")
	f.Add("abcd", "", "tail")
	f.Add(secret, "x", "yz")
	f.Add("\x00\xff\xfe\x01", "\x02", "\x03")
	f.Fuzz(func(t *testing.T, sec, prefix, suffix string) {
		if len(sec) < MinLen {
			return
		}
		s := New(sec)
		whole := []byte(prefix + sec + suffix)
		forms := []string{sec, hex.EncodeToString([]byte(sec))}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			forms = append(forms, enc.EncodeToString(whole))
		}
		for _, form := range forms {
			if strings.Contains(Text, form) {
				continue
			}
			in := "before " + form + " after"
			out := s.Scrub(in)
			if strings.Contains(out, form) {
				t.Fatalf("secret %q: %q scrubbed to %q", sec, in, out)
			}
			// The text around is left alone, unless the secret can also
			// be read in it or across it (a secret with a space, or one
			// inside "before" or "after"): every place it can be read is
			// redacted, and that may take in the text around.
			around := !strings.Contains(sec, " ") && !strings.Contains(in[:len("before ")]+in[len(in)-len(" after"):], sec)
			if around && (!strings.HasPrefix(out, "before ") || !strings.HasSuffix(out, " after")) {
				t.Fatalf("secret %q: %q scrubbed to %q: the text around it changed", sec, in, out)
			}
		}
		// Text of characters outside the secret's bytes cannot hold it,
		// nor its encodings when those characters are no base64 ones.
		plain := "(, ; ! ? . ~ *)"
		if !strings.ContainsAny(sec, plain) && s.Scrub(plain) != plain {
			t.Fatalf("secret %q: %q changed to %q", sec, plain, s.Scrub(plain))
		}
	})
}

func benchSecrets() []string {
	var out []string
	for i := range 12 {
		out = append(out, fmt.Sprintf("secret-%02d-%s", i, strings.Repeat("k9Zx", 6)))
	}
	return out
}

const benchLine = `[INFO] [www.example.com] acme: Waiting for DNS record propagation. _acme-challenge.www.example.com. ` +
	`TXT "Xr0HcDuW3Uo6Rg0e8bXvJ8I2d6zXgkLrFZVxT8bW2m0" 2026-01-02T03:04:05Z retry 1/10`

// BenchmarkScrub measures a log line against the secrets of a config with
// a dozen of them: without a secret (most lines), and with two.
func BenchmarkScrub(b *testing.B) {
	secrets := benchSecrets()
	s := New(secrets...)
	withSecret := benchLine + " body: {\"token\":\"" + secrets[3] + "\"} " + basic("api", secrets[7])
	for _, bc := range []struct{ name, line string }{{"clean", benchLine}, {"secrets", withSecret}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.line)))
			for b.Loop() {
				_ = s.Scrub(bc.line)
			}
		})
	}
}

// BenchmarkNew measures building a Scrubber for a dozen secrets.
func BenchmarkNew(b *testing.B) {
	secrets := benchSecrets()
	b.ReportAllocs()
	for b.Loop() {
		_ = New(secrets...)
	}
}

// TestScrubLongRun: a long base64 run holding the secret many times is
// replaced whole, in linear time.
func TestScrubLongRun(t *testing.T) {
	sec := "\x00\x00\x00\x00\x00\x00"
	run := strings.Repeat("A", 1<<20)
	if got := New(sec).Scrub("x " + run + " y"); got != "x "+Text+" y" {
		t.Errorf("got %d bytes", len(got))
	}
}

// pathError is a cause of a type that errors.As looks for.
type pathError struct{ path, secret string }

func (e *pathError) Error() string { return "open " + e.path + " with " + e.secret }

// TestScrubberError: the wrapped error's message is scrubbed, while
// errors.Is and errors.As still find its causes; nil stays nil, and an
// error without a secret is returned as it is.
func TestScrubberError(t *testing.T) {
	errCause := errors.New("the cause")
	s := New(secret)
	tests := []struct {
		name    string
		s       *Scrubber
		err     error
		want    string
		is      error
		same    bool // the error itself is returned
		asPath  string
		nilWant bool
	}{
		{name: "nil", s: s, err: nil, nilWant: true},
		{name: "a wrapped sentinel", s: s, err: fmt.Errorf("calling the API with %s: %w", secret, errCause),
			want: "calling the API with " + Text + ": the cause", is: errCause},
		{name: "a typed cause", s: s, err: fmt.Errorf("storing: %w", &pathError{"certs/a.crt", url.QueryEscape(secret)}),
			want: "storing: open certs/a.crt with " + Text, asPath: "certs/a.crt"},
		{name: "a joined cause", s: s, err: errors.Join(errCause, errors.New(jsonString(secret))),
			want: "the cause\n\"" + Text + "\"", is: errCause},
		{name: "no secret", s: s, err: fmt.Errorf("plain: %w", errCause), want: "plain: the cause", is: errCause, same: true},
		{name: "nil Scrubber", s: nil, err: fmt.Errorf("%s: %w", secret, errCause), want: secret + ": the cause", is: errCause, same: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.s.Error(tt.err)
			if tt.nilWant {
				if got != nil {
					t.Fatalf("Error(nil) = %v", got)
				}
				return
			}
			if got.Error() != tt.want {
				t.Errorf("message %q, want %q", got.Error(), tt.want)
			}
			if tt.same && got != tt.err {
				t.Errorf("a new error for a message without a secret: %#v", got)
			}
			if !tt.same && errors.Unwrap(got) != tt.err {
				t.Errorf("Unwrap does not return the error given")
			}
			if tt.is != nil && !errors.Is(got, tt.is) {
				t.Errorf("errors.Is does not find the cause")
			}
			var pe *pathError
			if tt.asPath != "" && (!errors.As(got, &pe) || pe.path != tt.asPath) {
				t.Errorf("errors.As does not find the typed cause")
			}
		})
	}
}

// TestPool: the same set of secrets, in any order and with duplicates or
// short values, gets one Lazy; another set gets another; a Lazy scrubs
// as New's Scrubber does, and the nil Pool and Lazy work.
func TestPool(t *testing.T) {
	var p Pool
	a := p.Get(secret, "second-secret", "ab")
	tests := []struct {
		name    string
		secrets []string
		same    bool
	}{
		{"same order", []string{secret, "second-secret", "ab"}, true},
		{"other order and duplicates", []string{"second-secret", secret, secret}, true},
		{"a subset", []string{secret}, false},
		{"another secret", []string{secret, "second-secret", "third-secret"}, false},
	}
	for _, tt := range tests {
		if got := p.Get(tt.secrets...) == a; got != tt.same {
			t.Errorf("%s: shared %v, want %v", tt.name, got, tt.same)
		}
	}
	text := "a " + secret + " and second-secret and " + url.QueryEscape(secret)
	if got, want := a.Scrub(text), New(secret, "second-secret").Scrub(text); got != want {
		t.Errorf("Lazy.Scrub = %q, want %q", got, want)
	}
	if err := a.Error(errors.New(text)); err.Error() != a.Scrub(text) {
		t.Errorf("Lazy.Error = %q", err)
	}
	var nilPool *Pool
	if got := nilPool.Get(secret).Scrub(secret); got != Text {
		t.Errorf("the nil Pool's Lazy scrubs %q to %q", secret, got)
	}
	var nilLazy *Lazy
	if nilLazy.Scrub(secret) != secret || nilLazy.Error(nil) != nil {
		t.Error("the nil Lazy changed something")
	}
}

// TestNewDuplicates: New with a secret repeated many times (one per
// certificate of a large configuration) scrubs as New with it once.
func TestNewDuplicates(t *testing.T) {
	many := make([]string, 10_000)
	for i := range many {
		many[i] = secret
	}
	text := "x " + secret + " " + base64.StdEncoding.EncodeToString([]byte("u:"+secret))
	if got, want := New(many...).Scrub(text), New(secret).Scrub(text); got != want {
		t.Errorf("Scrub = %q, want %q", got, want)
	}
}
