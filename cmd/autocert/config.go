package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"path/filepath"
	"runtime"
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
}

// webhookConfig is one entry of command.webhooks.
type webhookConfig struct {
	URL    string // a secret
	Format webhook.Format
}

// defaultDeployTimeout bounds a deploy hook unless deploy_timeout says.
const defaultDeployTimeout = 5 * time.Minute

// loadConfig reads the config file through the library: the autocert
// block and the command section, decoded and checked by the same rules.
// Every problem is reported, each naming the file, line and key. With
// withoutSecrets (for a command that contacts nothing and reads no
// secret, such as status), an unset variable referred to by a secret that
// such a command does not use (see secretKey) is left as it is written.
func loadConfig(path string, withoutSecrets bool) (*autocert.Config, *commandConfig, error) {
	sec := &commandSection{DeployTimeout: defaultDeployTimeout}
	opts := []autocert.LoadOption{autocert.WithSection("command", sec)}
	if withoutSecrets {
		sec.kept = make(map[string]bool)
		opts = append(opts, autocert.WithOptionalVariables(func(key string) bool {
			if secretKey(key) {
				sec.kept[key] = true
				return true
			}
			return false
		}))
	}
	cfg, err := autocert.LoadConfigFile(path, opts...)
	switch {
	case err == nil:
		return cfg, sec.config(), nil
	case errors.Is(err, autocert.ErrInvalidConfig):
		return nil, nil, err
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, fmt.Errorf("%w: %s does not exist (give another file with -config, or run \"autocert demo\" to try without one)", autocert.ErrInvalidConfig, path)
	}
	return nil, nil, fmt.Errorf("%w: %w", autocert.ErrInvalidConfig, err)
}

// secretKey reports whether a key (as configuration errors name it) is a
// secret that a command contacting no one does not use: the options (DNS
// provider credentials) of the main block or of an extra, or one of
// them, command.api.token or the URL of a webhook. Not eab_hmac, which
// must decode as base64url, nor the storage DSN, which status reads.
func secretKey(key string) bool {
	// Without the indexes: "extra[0].options.x" is "extra.options.x".
	var b strings.Builder
	for {
		i := strings.IndexByte(key, '[')
		j := strings.IndexByte(key, ']')
		if i < 0 || j < i {
			b.WriteString(key)
			break
		}
		b.WriteString(key[:i])
		key = key[j+1:]
	}
	key = b.String()
	return key == "options" || strings.HasPrefix(key, "options.") ||
		key == "extra.options" || strings.HasPrefix(key, "extra.options.") ||
		key == "command.api.token" || key == "command.webhooks.url"
}

// configSecrets returns every secret of the config, to scrub from what
// the command prints: the DNS provider options and the EAB keys (of each
// issuer too) of the main block and of each extra, the storage DSN and its password, the API
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
		for _, is := range b.Issuers {
			out = append(out, is.EABHmac.Value())
		}
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

// commandSection is the command section as written, decoded by
// autocert.LoadConfigFile (which calls Validate); config gives what it
// means.
type commandSection struct {
	API           *apiSection      `yaml:"api"`
	DeployHook    hookCommand      `yaml:"deploy_hook"`
	DeployTimeout time.Duration    `yaml:"deploy_timeout"`
	Webhooks      []webhookSection `yaml:"webhooks"`
	// kept are the keys whose unset variables were left as written
	// (status).
	kept map[string]bool
}

// apiSection is command.api as written.
type apiSection struct {
	Listen listenAddr `yaml:"listen"`
	Token  string     `yaml:"token"`
	TLS    bool       `yaml:"tls"`
}

// webhookSection is an entry of command.webhooks as written.
type webhookSection struct {
	URL    string `yaml:"url"`
	Format string `yaml:"format"`
}

var webhookFormats = map[string]webhook.Format{
	"": webhook.JSON, "json": webhook.JSON, "slack": webhook.Slack, "ntfy": webhook.Ntfy, "gotify": webhook.Gotify,
}

// Validate reports the problems of the section that its keys' types do
// not: each a *autocert.FieldError naming its key within the section.
func (s *commandSection) Validate() error {
	var problems []error
	add := func(line int, path, format string, args ...any) {
		problems = append(problems, &autocert.FieldError{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if api := s.API; api != nil {
		switch {
		case api.Listen.addr == "":
			add(0, "api.listen", "missing: the address to serve the API on, such as 127.0.0.1:9443")
		case api.Token == "" && !loopback(api.Listen.addr):
			add(api.Listen.line, "api.token",
				"required: the API would listen on %s, beyond this host, without authentication (set a token, or listen on 127.0.0.1)", api.Listen.addr)
		}
	}
	for i, w := range s.Webhooks {
		path := fmt.Sprintf("webhooks[%d]", i)
		switch u, err := url.Parse(w.URL); {
		case w.URL == "":
			add(0, path+".url", "missing")
		case s.kept[fmt.Sprintf("command.%s.url", path)]:
			// Left unexpanded for a command that sends nothing.
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			// The URL may hold a token: not printed.
			add(0, path+".url", "expected an http or https URL")
		}
		if _, ok := webhookFormats[strings.ToLower(w.Format)]; !ok {
			add(0, path+".format", "unknown format %q (known: json, slack, ntfy, gotify)", w.Format)
		}
	}
	return errors.Join(problems...)
}

// config returns what the section means.
func (s *commandSection) config() *commandConfig {
	cc := &commandConfig{DeployHook: s.DeployHook.argv, DeployShell: s.DeployHook.shell, DeployTimeout: s.DeployTimeout}
	if api := s.API; api != nil {
		cc.API = &apiConfig{Listen: api.Listen.addr, Token: api.Token, TLS: api.TLS}
	}
	for _, w := range s.Webhooks {
		cc.Webhooks = append(cc.Webhooks, webhookConfig{URL: w.URL, Format: webhookFormats[strings.ToLower(w.Format)]})
	}
	return cc
}

// hookCommand is command.deploy_hook: a string, run by the shell, or a
// list, the program and its arguments.
type hookCommand struct {
	argv  []string
	shell bool
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (h *hookCommand) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if strings.TrimSpace(n.Value) != "" {
			h.argv, h.shell = []string{n.Value}, true
		}
		return nil
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			return errors.New("the list is empty: give the program and its arguments")
		}
		argv := make([]string, 0, len(n.Content))
		for _, a := range n.Content {
			for a.Kind == yaml.AliasNode && a.Alias != nil {
				a = a.Alias
			}
			if a.Kind != yaml.ScalarNode || a.ShortTag() == "!!null" {
				return errors.New("expected a list of strings: the program and its arguments")
			}
			argv = append(argv, a.Value)
		}
		h.argv = argv
		return nil
	}
	return errors.New("expected a command (a string run by the shell, or a list: the program and its arguments)")
}

// listenAddr is command.api.listen, host:port, with its line for the
// messages about the API.
type listenAddr struct {
	addr string
	line int
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (l *listenAddr) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("expected host:port, such as 127.0.0.1:9443")
	}
	if _, _, err := net.SplitHostPort(n.Value); err != nil {
		return errors.New("expected host:port, such as 127.0.0.1:9443")
	}
	l.addr, l.line = n.Value, n.Line
	return nil
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
