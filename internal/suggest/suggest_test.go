package suggest

import "testing"

func TestNearest(t *testing.T) {
	names := []string{"cloudflare", "route53", "digitalocean", "local", "pseudo", "acmetest"}
	tests := []struct{ in, want string }{
		{"cloudflare", "cloudflare"},
		{"cloudfare", "cloudflare"},
		{"CloudFlare", "cloudflare"},
		{"route35", "route53"},
		{"acmetset", "acmetest"},
		{"locl", "local"},
		{"xyz", ""},
		{"", ""},
		{"digitalocea", "digitalocean"},
		{"somethingelse", ""},
	}
	for _, tt := range tests {
		if got := Nearest(tt.in, names); got != tt.want {
			t.Errorf("Nearest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := Nearest("ab", []string{"ba", "ab2"}); got != "ab2" {
		t.Errorf("closest first: %q", got)
	}
	if got := Nearest("aa", []string{"ac", "ab"}); got != "ab" {
		t.Errorf("ties go to the first in sort order: %q", got)
	}
}

func TestNearestTypos(t *testing.T) {
	candidates := []string{"local", "pseudo", "cloudflare", "route53", "digitalocean", "duckdns", "godaddy"}
	tests := []struct{ in, want string }{
		{"Cloudflair", "cloudflare"},
		{"digitalocen", "digitalocean"},
		{"duckdsn", "duckdns"},
		{"psuedo", "pseudo"},
		{"lcoal", "local"},
		{"nothing-like-it", ""},
		{"x", ""},
	}
	for _, tt := range tests {
		if got := Nearest(tt.in, candidates); got != tt.want {
			t.Errorf("Nearest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
