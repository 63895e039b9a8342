package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/internal/redact"
	"github.com/autocert-dev/autocert/notify/webhook"
	"go.yaml.in/yaml/v3"
)

// commandConfig is the "command" section of the config file: settings of
// this command that the library ignores. It sits next to the "autocert"
// block:
//
//	autocert:
//	  provider: cloudflare
//	  ...
//	command:
//	  deploy_hook: systemctl reload nginx
//	  deploy_timeout: 2m
//	  api:
//	    listen: 127.0.0.1:9443
//	    token: ${AUTOCERT_API_TOKEN}
//	    tls: false
//	  webhooks:
//	    - url: ${SLACK_WEBHOOK_URL}
//	      format: slack
type commandConfig struct {
	// DeployHook is the command run after each certificate obtained or
	// renewed: a string is run by the shell (sh -c), a list is the
	// program and its arguments. Empty: none.
	DeployHook    []string
	DeployShell   bool
	DeployTimeout time.Duration
	API           *apiConfig
	Webhooks      []webhookConfig
}

// apiConfig is command.api.
type apiConfig struct {
	Listen string
	Token  string // a secret
	TLS    bool   // serve HTTPS with the managed certificate
	line   int    // of command.api.listen, for messages
}

// webhookConfig is one entry of command.webhooks.
type webhookConfig struct {
	URL    string // a secret
	Format webhook.Format
}

// defaultDeployTimeout bounds a deploy hook unless deploy_timeout says.
const defaultDeployTimeout = 5 * time.Minute

// loadConfig reads the config file: the autocert block through the
// library, the command section here. Every problem is reported, each
// naming the file, line and key. With withoutSecrets (for a command that
// contacts nothing and reads no secret, such as status), a variable that
// only secrets use (see optionalVariables) may be unset: the reference is
// then left as it is.
func loadConfig(path string, withoutSecrets bool) (*autocert.Config, *commandConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w: %s does not exist (give another file with -config, or run \"autocert demo\" to try without one)", autocert.ErrInvalidConfig, path)
		}
		return nil, nil, fmt.Errorf("%w: %w", autocert.ErrInvalidConfig, err)
	}
	env := &environment{}
	if withoutSecrets {
		env.optional = optionalVariables(data)
	}
	cc, cerr := parseCommandSection(data, path, env)
	cfg, err := autocert.LoadConfigLookup(path, env.lookup)
	if err = errors.Join(err, cerr); err != nil {
		return nil, nil, err
	}
	return cfg, cc, nil
}

// environment looks up the variables of ${VAR} references.
type environment struct {
	// optional are the variables that may be unset: a reference to one
	// that is unset is left as it is.
	optional map[string]bool
}

// lookup returns the value of the variable name, like os.LookupEnv; for
// an optional variable that is unset, the reference itself.
func (e *environment) lookup(name string) (string, bool) {
	if v, ok := os.LookupEnv(name); ok {
		return v, true
	}
	if e != nil && e.optional[name] {
		return "${" + name + "}", true
	}
	return "", false
}

// unexpanded reports whether raw holds a reference that lookup leaves
// as it is.
func (e *environment) unexpanded(raw string) bool {
	for _, r := range references(raw) {
		if _, set := os.LookupEnv(r.name); !set && e != nil && e.optional[r.name] {
			return true
		}
	}
	return false
}

// reference is a ${VAR} reference of a value.
type reference struct {
	name       string
	hasDefault bool // ${VAR:-default} or ${VAR-default}
}

// references returns the ${VAR} references of s ("$${" is a literal).
func references(s string) []reference {
	var refs []reference
	for i := 0; i+1 < len(s); i++ {
		if s[i] != '$' {
			continue
		}
		if strings.HasPrefix(s[i:], "$${") {
			i += 2
			continue
		}
		if s[i+1] != '{' {
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			break
		}
		expr := s[i+2 : i+end]
		n := 0
		for n < len(expr) && (expr[n] == '_' || expr[n] >= 'A' && expr[n] <= 'Z' || expr[n] >= 'a' && expr[n] <= 'z' || n > 0 && expr[n] >= '0' && expr[n] <= '9') {
			n++
		}
		if n > 0 {
			refs = append(refs, reference{name: expr[:n], hasDefault: n < len(expr)})
		}
		i += end
	}
	return refs
}

// optionalVariables returns the variables of a config file that a
// command contacting no one (status) may leave unset: those referred to,
// without a default, only by the secrets such a command does not use:
// the options (DNS provider credentials) of the main block and of the
// extras, command.api.token and the URLs of command.webhooks. A variable
// that another key refers to as well is not optional; nor are those of
// eab_hmac (which must decode as base64url) and of the storage DSN
// (status reads the storage).
func optionalVariables(data []byte) map[string]bool {
	var doc yaml.Node
	if err := yaml.Unmarshal(bytes.ReplaceAll(data, []byte("\t"), []byte(" ")), &doc); err != nil || len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil
	}
	secret, needed := map[string]bool{}, map[string]bool{}
	seen := map[*yaml.Node]int{}
	// walk records the references under n; secretPath tells whether the
	// key path (without indexes) is a secret one.
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if n == nil {
			return
		}
		isSecret := secretPath(path)
		mark := 1
		if isSecret {
			mark = 2
		}
		if seen[n]&mark != 0 {
			return
		}
		seen[n] |= mark
		switch n.Kind {
		case yaml.AliasNode:
			walk(n.Alias, path)
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], joinKey(path, n.Content[i].Value))
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.ScalarNode:
			for _, r := range references(n.Value) {
				if isSecret && !r.hasDefault {
					secret[r.name] = true
				} else {
					needed[r.name] = true
				}
			}
		}
	}
	var block *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch k, v := root.Content[i].Value, root.Content[i+1]; k {
		case "autocert":
			block = v
		case "command":
			walk(v, "command")
		}
	}
	if block == nil {
		block = root
	}
	walk(block, "")
	for name := range needed {
		delete(secret, name)
	}
	return secret
}

// joinKey appends key to a key path.
func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// secretPath reports whether a key path (the extras' index left out) is
// one whose values optionalVariables may leave unexpanded.
func secretPath(path string) bool {
	return path == "options" || strings.HasPrefix(path, "options.") ||
		path == "extra.options" || strings.HasPrefix(path, "extra.options.") ||
		path == "command.api.token" || path == "command.webhooks.url"
}

// configSecrets returns every secret of the config, to scrub from what
// the command prints: the DNS provider options and the EAB key of the
// main block and of each extra, the storage DSN and its password, the API
// token, and the webhook URLs and the tokens they hold.
func configSecrets(cfg *autocert.Config, cc *commandConfig) []string {
	var out []string
	blocks := []*autocert.Config{cfg}
	for i := range cfg.Extra {
		blocks = append(blocks, (*autocert.Config)(&cfg.Extra[i]))
	}
	for _, b := range blocks {
		for _, v := range b.Options {
			out = append(out, v.Value())
		}
		out = append(out, b.EABHmac.Value())
		if b.Storage != nil {
			out = append(out, redact.DSNSecrets(b.Storage.DSN.Value())...)
		}
	}
	if cc != nil {
		if cc.API != nil {
			out = append(out, cc.API.Token)
		}
		for _, w := range cc.Webhooks {
			out = append(out, redact.URLSecrets(w.URL)...)
		}
	}
	return out
}

// sectionParser collects the problems of the command section.
type sectionParser struct {
	file     string
	env      *environment
	problems []error
}

func (s *sectionParser) add(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	s.problems = append(s.problems, &autocert.FieldError{File: s.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// parseCommandSection reads the "command" section of a config file; a
// file without one gives the zero commandConfig. A document that does not
// parse is left to autocert.LoadConfig, which explains why.
func parseCommandSection(data []byte, file string, env *environment) (*commandConfig, error) {
	cc := &commandConfig{DeployTimeout: defaultDeployTimeout}
	var doc yaml.Node
	if err := yaml.Unmarshal(bytes.ReplaceAll(data, []byte("\t"), []byte(" ")), &doc); err != nil || len(doc.Content) == 0 {
		return cc, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return cc, nil
	}
	var key, section *yaml.Node
	hasBlock := false
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "command":
			key, section = root.Content[i], root.Content[i+1]
		case "autocert":
			hasBlock = true
		}
	}
	if section == nil {
		return cc, nil
	}
	s := &sectionParser{file: file, env: env}
	if !hasBlock {
		s.add(key, "command", `the command section needs the autocert keys under "autocert:" (without it, every top-level key is read as an autocert key)`)
		return nil, errors.Join(s.problems...)
	}
	s.section(section, cc)
	if len(s.problems) > 0 {
		return nil, errors.Join(s.problems...)
	}
	return cc, nil
}

func (s *sectionParser) section(n *yaml.Node, cc *commandConfig) {
	if isNull(n) {
		return
	}
	s.mapping(n, "command", map[string]func(k, v *yaml.Node, path string){
		"deploy_hook": func(_, v *yaml.Node, path string) {
			switch v.Kind {
			case yaml.ScalarNode:
				if cmd, ok := s.str(v, path); ok && strings.TrimSpace(cmd) != "" {
					cc.DeployHook, cc.DeployShell = []string{cmd}, true
				}
			case yaml.SequenceNode:
				for i, a := range v.Content {
					if arg, ok := s.str(a, fmt.Sprintf("%s[%d]", path, i)); ok {
						cc.DeployHook = append(cc.DeployHook, arg)
					}
				}
				if len(v.Content) == 0 {
					s.add(v, path, "the list is empty: give the program and its arguments")
				}
			default:
				s.add(v, path, "expected a command (a string run by the shell, or a list: the program and its arguments)")
			}
		},
		"deploy_timeout": func(_, v *yaml.Node, path string) {
			if d, ok := s.duration(v, path); ok {
				cc.DeployTimeout = d
			}
		},
		"api": func(k, v *yaml.Node, path string) {
			api := &apiConfig{line: k.Line}
			s.mapping(v, path, map[string]func(k, v *yaml.Node, path string){
				"listen": func(k, v *yaml.Node, path string) {
					api.line = k.Line
					if addr, ok := s.str(v, path); ok {
						if _, _, err := net.SplitHostPort(addr); err != nil {
							s.add(v, path, "expected host:port, such as 127.0.0.1:9443")
						}
						api.Listen = addr
					}
				},
				"token": func(_, v *yaml.Node, path string) {
					if t, ok := s.str(v, path); ok {
						api.Token = t
					}
				},
				"tls": func(_, v *yaml.Node, path string) {
					switch strings.ToLower(v.Value) {
					case "true", "yes", "on":
						api.TLS = true
					case "false", "no", "off":
					default:
						s.add(v, path, "expected true or false")
					}
				},
			})
			switch {
			case api.Listen == "":
				s.add(k, path+".listen", "missing: the address to serve the API on, such as 127.0.0.1:9443")
			case api.Token == "" && !loopback(api.Listen):
				s.add(&yaml.Node{Line: api.line}, path+".token",
					"required: the API would listen on %s, beyond this host, without authentication (set a token, or listen on 127.0.0.1)", api.Listen)
			}
			cc.API = api
		},
		"webhooks": func(_, v *yaml.Node, path string) {
			if v.Kind != yaml.SequenceNode {
				s.add(v, path, "expected a list of webhooks, each with a url and a format")
				return
			}
			for i, item := range v.Content {
				ipath := fmt.Sprintf("%s[%d]", path, i)
				var wh webhookConfig
				s.mapping(item, ipath, map[string]func(k, v *yaml.Node, path string){
					"url": func(_, v *yaml.Node, path string) {
						if u, ok := s.str(v, path); ok {
							if s.env.unexpanded(v.Value) {
								// Left unexpanded for a command that
								// sends nothing.
								wh.URL = u
								return
							}
							if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
								// The URL may hold a token: not printed.
								s.add(v, path, "expected an http or https URL")
							}
							wh.URL = u
						}
					},
					"format": func(_, v *yaml.Node, path string) {
						f, ok := webhookFormats[strings.ToLower(v.Value)]
						if !ok {
							s.add(v, path, "unknown format %q (known: json, slack, ntfy, gotify)", v.Value)
						}
						wh.Format = f
					},
				})
				if wh.URL == "" && isMapping(item) {
					s.add(item, ipath+".url", "missing")
				}
				cc.Webhooks = append(cc.Webhooks, wh)
			}
		},
	})
}

var webhookFormats = map[string]webhook.Format{
	"": webhook.JSON, "json": webhook.JSON, "slack": webhook.Slack, "ntfy": webhook.Ntfy, "gotify": webhook.Gotify,
}

// mapping calls the function of each key of n, and reports unknown and
// repeated keys.
func (s *sectionParser) mapping(n *yaml.Node, path string, keys map[string]func(k, v *yaml.Node, path string)) {
	if !isMapping(n) {
		s.add(n, path, "expected a mapping of keys")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		kpath := path + "." + k.Value
		f, ok := keys[k.Value]
		switch {
		case !ok:
			s.add(k, kpath, "unknown key (known: %s)", strings.Join(sortedKeys(keys), ", "))
		case seen[k.Value]:
			s.add(k, kpath, "given twice")
		case isNull(v):
			s.add(k, kpath, "no value")
		default:
			f(k, v, kpath)
		}
		seen[k.Value] = true
	}
}

// str returns the scalar value of n with environment variables expanded.
func (s *sectionParser) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		s.add(n, path, "expected a string")
		return "", false
	}
	v, err := expandEnvLookup(n.Value, s.env.lookup)
	if err != nil {
		s.add(n, path, "%v", err)
		return "", false
	}
	return v, true
}

func (s *sectionParser) duration(n *yaml.Node, path string) (time.Duration, bool) {
	v, ok := s.str(n, path)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		s.add(n, path, "expected a positive duration, such as 90s or 5m")
		return 0, false
	}
	return d, true
}

func isMapping(n *yaml.Node) bool { return n != nil && n.Kind == yaml.MappingNode }

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// expandEnv replaces ${VAR}, ${VAR:-default} (VAR unset or empty) and
// ${VAR-default} (VAR unset) with values from the environment, as the
// autocert block does; "$${" stands for a literal "${". A variable that is
// unset without a default is an error naming it.
func expandEnv(s string) (string, error) { return expandEnvLookup(s, os.LookupEnv) }

// expandEnvLookup is expandEnv with the variables looked up by lookup.
func expandEnvLookup(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1] + "${")
			s = s[i+2:]
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unclosed ${ in value")
		}
		b.WriteString(s[:i])
		expr := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef, emptyToo := expr, "", false, false
		if j := strings.Index(expr, ":-"); j >= 0 {
			name, def, hasDef, emptyToo = expr[:j], expr[j+2:], true, true
		} else if j := strings.IndexByte(expr, '-'); j >= 0 {
			name, def, hasDef = expr[:j], expr[j+1:], true
		}
		val, set := lookup(name)
		switch {
		case set && (val != "" || !emptyToo):
			b.WriteString(val)
		case hasDef:
			b.WriteString(def)
		default:
			return "", fmt.Errorf("%w: ${%s}", autocert.ErrUnsetVariable, name)
		}
	}
}

// loopback reports whether addr (host:port) listens on this host only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// certFiles are the files of one certificate, for the deploy hook.
type certFiles struct {
	cert, key string
	domains   []string
}

// filesOf returns the files of each certificate of cfg by provider name,
// as absolute paths.
func filesOf(cfg *autocert.Config) map[string]certFiles {
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	out := map[string]certFiles{"main": {abs(cfg.CertPath), abs(cfg.KeyPath), cfg.Domains}}
	for i := range cfg.Extra {
		m := autocert.MergeExtraConfig(cfg, &cfg.Extra[i])
		out[fmt.Sprintf("extra[%d]", i)] = certFiles{abs(m.CertPath), abs(m.KeyPath), m.Domains}
	}
	return out
}

// shellCommand returns the program and arguments that run cmd through the
// system's shell.
func shellCommand(cmd string) []string {
	if runtime.GOOS == "windows" {
		return []string{"cmd", "/C", cmd}
	}
	return []string{"/bin/sh", "-c", cmd}
}
