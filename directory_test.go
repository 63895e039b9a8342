package autocert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rs/zerolog"
)

func TestFetchDirectoryMeta(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		want    map[string]string
		wantErr string // part of the error; "" for none
	}{
		{name: "profiles", status: 200,
			body: `{"newOrder":"https://ca/new-order","meta":{"profiles":{"classic":"90 days","shortlived":"6 days"},"externalAccountRequired":false}}`,
			want: map[string]string{"classic": "90 days", "shortlived": "6 days"}},
		{name: "meta without profiles", status: 200, body: `{"meta":{"termsOfService":"https://ca/tos"}}`},
		{name: "no meta", status: 200, body: `{"newOrder":"https://ca/new-order"}`},
		{name: "empty profiles", status: 200, body: `{"meta":{"profiles":{}}}`, want: map[string]string{}},
		{name: "not found", status: 404, body: `nothing here`, wantErr: "HTTP status 404"},
		{name: "not JSON", status: 200, body: `<html>`, wantErr: "not a JSON directory"},
		{name: "profiles not an object", status: 200, body: `{"meta":{"profiles":["a"]}}`, wantErr: "not a JSON directory"},
		{name: "too large", status: 200, body: `{"meta":{"website":"` + strings.Repeat("x", maxDirectorySize) + `"}}`, wantErr: "larger than the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.URL.Path != "/dir" {
					http.Error(w, "unexpected request", http.StatusBadRequest)
					return
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			url := srv.URL + "/dir"
			meta, err := fetchDirectoryMeta(context.Background(), srv.Client(), url)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), url) {
					t.Fatalf("error %v; want one naming %s and saying %q", err, url, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(meta.Profiles, tt.want) {
				t.Errorf("profiles %q; want %q", meta.Profiles, tt.want)
			}
		})
	}
}

// TestFetchDirectoryMetaGivesUp: the fetch ends with its context, even
// when the CA never answers.
func TestFetchDirectoryMetaGivesUp(t *testing.T) {
	unblock := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-unblock:
		}
	}))
	defer srv.Close()
	defer close(unblock)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := fetchDirectoryMeta(ctx, srv.Client(), srv.URL)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v; want the context's", err)
	}
}

func TestCheckProfile(t *testing.T) {
	offered := map[string]string{"classic": "", "shortlived": ""}
	tests := []struct {
		profile string
		offered map[string]string
		want    profileVerdict
	}{
		{"", offered, profileOffered},
		{"", nil, profileOffered},
		{"shortlived", offered, profileOffered},
		{"shortlivd", offered, profileNotOffered},
		{"Shortlived", offered, profileNotOffered}, // names are compared as the CA spells them
		{"shortlived", nil, profileNoneOffer},
		{"shortlived", map[string]string{}, profileNoneOffer},
	}
	for _, tt := range tests {
		if got := checkProfile(tt.profile, tt.offered); got != tt.want {
			t.Errorf("checkProfile(%q, %v) = %d; want %d", tt.profile, tt.offered, got, tt.want)
		}
	}
}

func TestProfileRequests(t *testing.T) {
	prov := func(name, provider, profile string) *certificate {
		return &certificate{name: name, cfg: &Config{Provider: provider, Profile: profile}}
	}
	ps := []*certificate{
		prov("main", "cloudflare", "shortlivd"),
		prov("extra[0]", "cloudflare", ""),
		prov("extra[1]", "route53", "classic"),
		prov("extra[2]", ProviderLocal, "ignored"),
		prov("extra[3]", ProviderPseudo, "ignored"),
		prov("extra[4]", "cloudflare", "shortlivd"),
	}
	want := []profileRequest{
		{profile: "shortlivd", certs: []string{"main", "extra[4]"}},
		{profile: "classic", certs: []string{"extra[1]"}},
	}
	if got := profileRequests(ps, nil); !reflect.DeepEqual(got, want) {
		t.Errorf("profileRequests = %+v; want %+v", got, want)
	}
	if got := profileRequests(ps[1:2], nil); got != nil {
		t.Errorf("profileRequests without profiles = %+v; want none", got)
	}
}

func TestOfferedDict(t *testing.T) {
	log := func(offered map[string]string) string {
		var buf bytes.Buffer
		l := zerolog.New(&buf)
		l.Warn().Dict("offered", offeredDict(offered)).Send()
		return strings.TrimSpace(buf.String())
	}
	got := log(map[string]string{"tlsserver": "c", "classic": "a", "shortlived": "b"})
	if want := `{"level":"warn","offered":{"classic":"a","shortlived":"b","tlsserver":"c"}}`; got != want {
		t.Errorf("got %s; want %s (sorted by name)", got, want)
	}

	many := make(map[string]string)
	for i := range maxProfilesLogged + 7 {
		many[fmt.Sprintf("p%03d", i)] = strings.Repeat("é", maxProfileDescLogged)
	}
	got = log(many)
	if n := strings.Count(got, `"p0`); n != maxProfilesLogged {
		t.Errorf("%d profiles listed; want %d", n, maxProfilesLogged)
	}
	if !strings.Contains(got, `"more":7`) {
		t.Errorf("no count of the profiles left out: %s", got)
	}
}

func TestShorten(t *testing.T) {
	tests := []struct {
		in      string
		wantLen int // bytes before the ellipsis; -1: unchanged
	}{
		{"", -1},
		{"short", -1},
		{strings.Repeat("a", maxProfileDescLogged), -1},
		{strings.Repeat("a", maxProfileDescLogged+1), maxProfileDescLogged},
		{"a" + strings.Repeat("é", maxProfileDescLogged), maxProfileDescLogged - 1}, // 'é' is 2 bytes: cut before a split rune
	}
	for _, tt := range tests {
		got := shorten(tt.in)
		if tt.wantLen < 0 {
			if got != tt.in {
				t.Errorf("shorten(%d bytes) changed it", len(tt.in))
			}
			continue
		}
		if !strings.HasSuffix(got, "…") || len(got)-len("…") != tt.wantLen || !utf8.ValidString(got) {
			t.Errorf("shorten(%d bytes) = %d bytes %q...; want %d bytes and an ellipsis", len(tt.in), len(got), got[:10], tt.wantLen)
		}
	}
}
