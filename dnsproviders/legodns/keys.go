package legodns

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"
	"unicode"
)

// kind is how a key's value is converted.
type kind int

const (
	kindString kind = iota
	kindBool
	kindInt
	kindUint
	kindFloat
	kindDuration
	kindURL    // *url.URL
	kindURLVal // url.URL
	kindStrings
	kindMap
	kindHTTPTimeout // the Timeout of an *http.Client field
)

// key is one option of a provider.
type key struct {
	name    string // snake_case, with "parent." for nested fields
	goPath  string // dotted Go field path, as in the generated table
	index   []int  // field indexes from the Config struct
	typ     reflect.Type
	kind    kind
	aliases []string // lego's environment variable names
}

var (
	durationType   = reflect.TypeFor[time.Duration]()
	urlType        = reflect.TypeFor[url.URL]()
	httpClientType = reflect.TypeFor[*http.Client]()
)

// maxDepth bounds how deep nested structs become keys.
const maxDepth = 2

// collectKeys returns the option keys of the struct type t: its exported
// fields of a convertible type, the timeout of an *http.Client field, and
// the fields of structs of t's own package held by a field.
func collectKeys(t reflect.Type, hidden map[string]bool) []*key {
	var keys []*key
	var walk func(t reflect.Type, index []int, goPath, prefix string, depth int)
	walk = func(t reflect.Type, index []int, goPath, prefix string, depth int) {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || f.Anonymous {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			gp := f.Name
			if goPath != "" {
				gp = goPath + "." + f.Name
			}
			name := prefix + snakeCase(f.Name)
			if hidden[gp] || hidden[name] {
				continue
			}
			if f.Type == httpClientType {
				keys = append(keys, &key{
					name: prefix + "http_timeout", goPath: gp + ".Timeout",
					index: idx, typ: f.Type, kind: kindHTTPTimeout,
				})
				continue
			}
			if k, ok := leafKind(f.Type); ok {
				keys = append(keys, &key{name: name, goPath: gp, index: idx, typ: f.Type, kind: k})
				continue
			}
			st := f.Type
			if st.Kind() == reflect.Pointer {
				st = st.Elem()
			}
			// Only the provider's own nested configs, not SDK types.
			if st.Kind() == reflect.Struct && st.PkgPath() == t.PkgPath() && depth < maxDepth {
				walk(st, idx, gp, name+".", depth+1)
			}
		}
	}
	walk(t, nil, "", "", 0)
	// A Config with both an HTTPTimeout field and an *http.Client has two
	// http_timeout keys: the field wins.
	seen := make(map[string]bool, len(keys))
	out := keys[:0]
	for _, k := range keys {
		if k.kind == kindHTTPTimeout {
			continue
		}
		seen[k.name] = true
	}
	for _, k := range keys {
		if k.kind == kindHTTPTimeout && seen[k.name] {
			continue
		}
		out = append(out, k)
	}
	return out
}

// leafKind tells whether values of type t can be written as one option.
func leafKind(t reflect.Type) (kind, bool) {
	switch t {
	case durationType:
		return kindDuration, true
	case urlType:
		return kindURLVal, true
	case reflect.PointerTo(urlType):
		return kindURL, true
	}
	switch t.Kind() {
	case reflect.String:
		return kindString, true
	case reflect.Bool:
		return kindBool, true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return kindInt, true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return kindUint, true
	case reflect.Float32, reflect.Float64:
		return kindFloat, true
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return kindStrings, true
		}
	case reflect.Map:
		if t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String {
			return kindMap, true
		}
	}
	return 0, false
}

// wholeWords are mixed-case words of Go field names that snakeCase keeps
// as one word.
var wholeWords = strings.NewReplacer("OAuth", "Oauth", "IPv4", "Ipv4", "IPv6", "Ipv6")

// snakeCase converts a Go field name to its option key: a word starts at
// an upper-case letter after a lower-case letter or a digit, and at the
// last capital of an acronym followed by a lower-case letter, so that
// APIKey is api_key, AccessKeyID is access_key_id, TSIGKey is tsig_key and
// OAuth2Config is oauth2_config.
func snakeCase(name string) string {
	r := []rune(wholeWords.Replace(name))
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) {
			if i > 0 {
				prev := r[i-1]
				nextLower := i+1 < len(r) && unicode.IsLower(r[i+1])
				if unicode.IsLower(prev) || unicode.IsDigit(prev) || unicode.IsUpper(prev) && nextLower {
					b.WriteByte('_')
				}
			}
			b.WriteRune(unicode.ToLower(c))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}
