// Command gen reads the source of lego's DNS provider packages and writes
// what autocert cannot learn by reflection at run time:
//
//   - legodns/zz_lego_meta.go: for each lego provider package, the
//     environment variables that set each Config field (accepted as option
//     aliases) and the fields its NewDNSProvider demands unconditionally
//     (the required options);
//   - all/zz_providers.go: one registration line for every lego provider
//     that no hand-written package of dnsproviders registers, under lego's
//     own names.
//
// It runs from the dnsproviders directory through "go generate" and reads
// lego from the module cache, at the version go.mod requires.
package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

const legoModule = "github.com/go-acme/lego/v4"

// renamed gives other names to lego providers whose lego name autocert
// uses for something else: "clouddns" is Google Cloud DNS, as in the seed's
// table, so lego's CloudDNS (vshosting) is "vshosting".
var renamed = map[string][]string{"clouddns": {"vshosting"}}

// lazy lists the lego providers whose constructor calls the vendor's API
// (TestEveryProviderBuilds in dnsproviders/all finds them): they are
// built on first use instead.
var lazy = map[string]bool{"conoha": true, "conohav3": true, "nicru": true, "rackspace": true}

// requireOneOf replaces what gen reads from lego's source for providers
// whose constructor checks alternatives, or settings NewDNSProvider reads
// inside a branch.
var requireOneOf = map[string][]string{
	"checkdomain": {"endpoint token"},
	"joker":       {"api_key", "username password"},
	"nicmanager":  {"login username password", "email password"},
	"vkcloud":     {"project_id username password dns_endpoint"},
	"zoneedit":    {"user auth_token"},
}

// skipped lists lego providers that are not registered: shut down or
// deprecated by lego, or not configurable from options (plesk's base URL
// is an unexported field, selfhostde's record mapping is a map of
// structs).
var skipped = map[string]bool{
	"azure": true, "cloudxns": true, "googledomains": true, "iwantmyname": true,
	"plesk": true, "selfhostde": true,
}

// errCfg holds the packages whose NewDefaultConfig also returns an error.
var errCfg = make(map[string]bool)

func main() {
	log.SetFlags(0)
	log.SetPrefix("gen: ")
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", legoModule).Output()
	if err != nil {
		log.Fatalf("go list %s: %v", legoModule, err)
	}
	dir, version, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	dnsDir := filepath.Join(dir, "providers", "dns")

	names, err := legoNames(filepath.Join(dnsDir, "zz_gen_dns_providers.go"))
	if err != nil {
		log.Fatal(err)
	}
	pkgs := make([]string, 0, len(names))
	for pkg := range names {
		pkgs = append(pkgs, pkg)
	}
	sort.Strings(pkgs)

	var metas []pkgMeta
	for _, pkg := range pkgs {
		m, err := analyse(filepath.Join(dnsDir, pkg))
		if err != nil {
			log.Fatalf("%s: %v", pkg, err)
		}
		m.pkg = pkg
		metas = append(metas, m)
	}
	if err := writeMeta("legodns/zz_lego_meta.go", version, metas); err != nil {
		log.Fatal(err)
	}

	handled, err := handWritten(".")
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range metas {
		if !m.usable || skipped[m.pkg] {
			handled[m.pkg] = true // no Config constructors: not configurable from options
		}
		if m.errCfg {
			errCfg[m.pkg] = true
		}
	}
	if err := writeAll("all/zz_providers.go", version, pkgs, names, handled); err != nil {
		log.Fatal(err)
	}
}

// legoNames maps each provider package to the names lego's own factory
// accepts for it, read from the switch of NewDNSChallengeProviderByName.
func legoNames(file string) (map[string][]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		return nil, err
	}
	names := make(map[string][]string)
	ast.Inspect(f, func(n ast.Node) bool {
		cc, ok := n.(*ast.CaseClause)
		if !ok || len(cc.Body) == 0 {
			return true
		}
		ret, ok := cc.Body[0].(*ast.ReturnStmt)
		if !ok || len(ret.Results) == 0 {
			return true
		}
		call, ok := ret.Results[0].(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		pkg, ok := sel.X.(*ast.Ident)
		if !ok {
			return true
		}
		for _, e := range cc.List {
			if lit, ok := e.(*ast.BasicLit); ok {
				s, _ := strconv.Unquote(lit.Value)
				names[pkg.Name] = append(names[pkg.Name], s)
			}
		}
		return true
	})
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no provider names found", file)
	}
	return names, nil
}

// pkgMeta is what gen learns about one lego provider package.
type pkgMeta struct {
	pkg      string
	usable   bool                // has NewDefaultConfig and NewDNSProviderConfig
	errCfg   bool                // NewDefaultConfig also returns an error
	env      map[string][]string // field path -> environment variables, primary first
	required []string            // field paths
}

// analyser reads one package.
type analyser struct {
	consts map[string]ast.Expr // package-level constant declarations
	funcs  map[string]*ast.FuncDecl
	meta   pkgMeta
}

func analyse(dir string) (pkgMeta, error) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return pkgMeta{}, err
	}
	a := &analyser{
		consts: make(map[string]ast.Expr),
		funcs:  make(map[string]*ast.FuncDecl),
		meta:   pkgMeta{env: make(map[string][]string)},
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, 0)
		if err != nil {
			return pkgMeta{}, err
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.GenDecl:
				if d.Tok != token.CONST {
					continue
				}
				for _, s := range d.Specs {
					vs := s.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							a.consts[n.Name] = vs.Values[i]
						}
					}
				}
			case *ast.FuncDecl:
				if d.Recv == nil {
					a.funcs[d.Name.Name] = d
				}
			}
		}
	}
	if fn := a.funcs["NewDefaultConfig"]; fn != nil {
		a.function(fn, false)
		a.meta.usable = a.funcs["NewDNSProviderConfig"] != nil
		a.meta.errCfg = fn.Type.Results != nil && fn.Type.Results.NumFields() == 2
	}
	if fn := a.funcs["NewDNSProvider"]; fn != nil {
		a.function(fn, true)
	}
	return a.meta, nil
}

// function records the environment variables read into Config fields by
// fn. In NewDNSProvider, the variables fetched by env.Get or
// env.GetWithFallback in a statement of the function body itself (not
// inside a branch) are required.
func (a *analyser) function(fn *ast.FuncDecl, provider bool) {
	locals := make(map[string][]string) // local variable -> env names it holds
	var required []string               // env names
	fallbacks := make(map[string][]string)
	for _, st := range fn.Body.List {
		if provider {
			ast.Inspect(st, func(n ast.Node) bool {
				if _, ok := n.(*ast.FuncLit); ok {
					return false
				}
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				switch callName(call) {
				case "env.Get":
					for _, arg := range call.Args {
						if names := a.envNames(arg, locals); len(names) > 0 {
							if isTopLevel(st) {
								required = append(required, names[0])
							}
						}
					}
				case "env.GetWithFallback":
					for _, arg := range call.Args {
						names := a.envNames(arg, locals)
						if len(names) == 0 {
							continue
						}
						if isTopLevel(st) {
							required = append(required, names[0])
						}
						if _, seen := fallbacks[names[0]]; !seen {
							fallbacks[names[0]] = names[1:]
						}
					}
				}
				return true
			})
		}
		a.statement(st, locals)
	}
	// Fallback names of a primary variable are aliases of its field, unless
	// they are another field's primary variable (cloudflare's zone token
	// falls back to the DNS token).
	primaries := make(map[string]bool)
	for _, names := range a.meta.env {
		if len(names) > 0 {
			primaries[names[0]] = true
		}
	}
	for path, names := range a.meta.env {
		if len(names) == 0 {
			continue
		}
		for _, alt := range fallbacks[names[0]] {
			if !primaries[alt] && !slices.Contains(names, alt) {
				a.meta.env[path] = append(a.meta.env[path], alt)
			}
		}
	}
	a.dedupe()
	for _, name := range required {
		for path, names := range a.meta.env {
			if slices.Contains(names, name) && !slices.Contains(a.meta.required, path) {
				a.meta.required = append(a.meta.required, path)
			}
		}
	}
	sort.Strings(a.meta.required)
}

// dedupe leaves each environment variable with one field: the one that
// lists it earliest (ties go to the first field path in order).
func (a *analyser) dedupe() {
	type pos struct {
		path string
		idx  int
	}
	best := make(map[string]pos)
	paths := make([]string, 0, len(a.meta.env))
	for p := range a.meta.env {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		for i, n := range a.meta.env[p] {
			if b, ok := best[n]; !ok || i < b.idx {
				best[n] = pos{p, i}
			}
		}
	}
	for _, p := range paths {
		a.meta.env[p] = slices.DeleteFunc(a.meta.env[p], func(n string) bool { return best[n].path != p })
		if len(a.meta.env[p]) == 0 {
			delete(a.meta.env, p)
		}
	}
}

// isTopLevel reports whether a statement of a function body runs
// unconditionally.
func isTopLevel(st ast.Stmt) bool {
	switch st.(type) {
	case *ast.AssignStmt, *ast.DeclStmt, *ast.ExprStmt:
		return true
	}
	return false
}

// statement records assignments of environment values in st.
func (a *analyser) statement(st ast.Stmt, locals map[string][]string) {
	ast.Inspect(st, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncLit:
			return false
		case *ast.AssignStmt:
			for i, lhs := range n.Lhs {
				rhs := n.Rhs[0]
				if len(n.Rhs) == len(n.Lhs) {
					rhs = n.Rhs[i]
				} else if i > 0 {
					continue // "x, err := f()": only the first result
				}
				switch l := lhs.(type) {
				case *ast.Ident:
					if names := a.envNames(rhs, locals); len(names) > 0 {
						locals[l.Name] = names
					}
				case *ast.SelectorExpr:
					if path := fieldPath(l); path != "" {
						a.assign(path, rhs, locals)
					}
				}
			}
		case *ast.ReturnStmt:
			for _, r := range n.Results {
				if lit := compositeLit(r); lit != nil {
					a.assign("", r, locals)
				}
			}
		}
		return true
	})
}

// assign records that the field at path (a dotted Go field path, "" for
// the Config itself) takes the value of expr.
func (a *analyser) assign(path string, expr ast.Expr, locals map[string][]string) {
	if lit := compositeLit(expr); lit != nil {
		for _, elt := range lit.Elts {
			kv, ok := elt.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			k, ok := kv.Key.(*ast.Ident)
			if !ok {
				continue
			}
			p := k.Name
			if path != "" {
				p = path + "." + k.Name
			}
			a.assign(p, kv.Value, locals)
		}
		return
	}
	if path == "" {
		return
	}
	for _, name := range a.envNames(expr, locals) {
		if !slices.Contains(a.meta.env[path], name) {
			a.meta.env[path] = append(a.meta.env[path], name)
		}
	}
}

// fieldPath returns "Field" for config.Field (any receiver name except
// package-qualified identifiers), "" otherwise.
func fieldPath(sel *ast.SelectorExpr) string {
	switch x := sel.X.(type) {
	case *ast.Ident:
		if x.Name == "config" || x.Name == "cfg" || x.Name == "conf" {
			return sel.Sel.Name
		}
	case *ast.SelectorExpr:
		if p := fieldPath(x); p != "" {
			return p + "." + sel.Sel.Name
		}
	}
	return ""
}

func compositeLit(e ast.Expr) *ast.CompositeLit {
	if u, ok := e.(*ast.UnaryExpr); ok && u.Op == token.AND {
		e = u.X
	}
	lit, _ := e.(*ast.CompositeLit)
	return lit
}

func callName(call *ast.CallExpr) string {
	switch f := call.Fun.(type) {
	case *ast.SelectorExpr:
		if x, ok := f.X.(*ast.Ident); ok {
			return x.Name + "." + f.Sel.Name
		}
	case *ast.Ident:
		return f.Name
	}
	return ""
}

// envNames returns the environment variable names that expr reads, in
// order of appearance: references to constants named Env*, altEnv* or
// env* (except namespaces), values[Env...] lookups, locals holding such
// values, and calls of the package's altEnvName helper.
func (a *analyser) envNames(expr ast.Expr, locals map[string][]string) []string {
	var names []string
	add := func(s ...string) {
		for _, n := range s {
			if n != "" && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	ast.Inspect(expr, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncLit:
			return false
		case *ast.IndexExpr:
			// values[EnvX] reads one variable of a map of several.
			if idx := a.envNames(n.Index, locals); len(idx) > 0 {
				add(idx...)
				return false
			}
		case *ast.CallExpr:
			// A package helper: the variable and the aliases it reads.
			if id, ok := n.Fun.(*ast.Ident); ok && a.funcs[id.Name] != nil && len(n.Args) > 0 {
				first := a.envNames(n.Args[0], locals)
				if len(first) == 1 {
					add(first[0])
					add(a.aliasesOf(a.funcs[id.Name], first[0], 0)...)
					for _, arg := range n.Args[1:] {
						add(a.envNames(arg, locals)...)
					}
					return false
				}
			}
		case *ast.Ident:
			if ls, ok := locals[n.Name]; ok {
				add(ls...)
				return true
			}
			if isEnvConst(n.Name) {
				if v, ok := a.eval(a.consts[n.Name]); ok {
					add(v)
				}
			}
		}
		return true
	})
	return names
}

func isEnvConst(name string) bool {
	if strings.HasSuffix(name, "Namespace") || strings.HasSuffix(name, "namespace") {
		return false
	}
	return strings.HasPrefix(name, "Env") || strings.HasPrefix(name, "altEnv") ||
		strings.HasPrefix(name, "env") && len(name) > 3 && name[3] >= 'A' && name[3] <= 'Z'
}

// eval computes a string constant expression: literals, constants and +.
func (a *analyser) eval(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.Ident:
		if v, ok := a.consts[e.Name]; ok {
			return a.eval(v)
		}
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		x, ok1 := a.eval(e.X)
		y, ok2 := a.eval(e.Y)
		return x + y, ok1 && ok2
	case *ast.ParenExpr:
		return a.eval(e.X)
	}
	return "", false
}

var replaceCall = regexp.MustCompile(`^strings\.(ReplaceAll|Replace)$`)

// aliasesOf returns the other names that the package's helper fn reads
// for the variable name: fn is a helper when it applies strings.ReplaceAll
// (or Replace) to its first parameter, or passes that parameter on to such
// a helper. Conditions inside the helper are ignored; a replacement that
// does not change the name adds nothing.
func (a *analyser) aliasesOf(fn *ast.FuncDecl, name string, depth int) []string {
	if depth > 6 || fn.Type.Params == nil || len(fn.Type.Params.List) == 0 || len(fn.Type.Params.List[0].Names) == 0 {
		return nil
	}
	param := fn.Type.Params.List[0].Names[0].Name
	var out []string
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		if id, ok := call.Args[0].(*ast.Ident); !ok || id.Name != param {
			return true
		}
		if replaceCall.MatchString(callName(call)) && len(call.Args) >= 3 {
			old, ok1 := a.eval(call.Args[1])
			repl, ok2 := a.eval(call.Args[2])
			if ok1 && ok2 && old != "" && strings.Contains(name, old) {
				out = append(out, strings.ReplaceAll(name, old, repl))
			}
			return true
		}
		if id, ok := call.Fun.(*ast.Ident); ok && a.funcs[id.Name] != nil && a.funcs[id.Name] != fn {
			out = append(out, a.aliasesOf(a.funcs[id.Name], name, depth+1)...)
		}
		return true
	})
	return out
}

// handWritten returns the lego packages that the hand-written packages
// under dir import (they register those providers themselves).
func handWritten(dir string) (map[string]bool, error) {
	handled := make(map[string]bool)
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "internal" || d.Name() == "all") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if rest, ok := strings.CutPrefix(p, legoModule+"/providers/dns/"); ok && !strings.Contains(rest, "/") {
				handled[rest] = true
			}
		}
		return nil
	})
	return handled, err
}

func writeMeta(file, version string, metas []pkgMeta) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by dnsproviders/internal/gen from lego %s; DO NOT EDIT.\n\n", version)
	b.WriteString("package legodns\n\n")
	b.WriteString("// legoMeta holds, per lego DNS provider package, the environment\n")
	b.WriteString("// variables that set each Config field (primary name first) and the\n")
	b.WriteString("// fields its NewDNSProvider always demands.\n")
	b.WriteString("var legoMeta = map[string]meta{\n")
	for _, m := range metas {
		fmt.Fprintf(&b, "%q: {", m.pkg)
		paths := make([]string, 0, len(m.env))
		for p := range m.env {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		if len(paths) > 0 {
			b.WriteString("env: []fieldEnv{")
			for _, p := range paths {
				fmt.Fprintf(&b, "{%q, %#v},", p, m.env[p])
			}
			b.WriteString("},")
		}
		if len(m.required) > 0 {
			fmt.Fprintf(&b, "required: %#v,", m.required)
		}
		b.WriteString("},\n")
	}
	b.WriteString("}\n")
	return writeGo(file, b.Bytes())
}

func writeAll(file, version string, pkgs []string, names map[string][]string, handled map[string]bool) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by dnsproviders/internal/gen from lego %s; DO NOT EDIT.\n\n", version)
	b.WriteString("package all\n\nimport (\n")
	b.WriteString("\"github.com/autocert-dev/autocert\"\n\"github.com/autocert-dev/autocert/dnsproviders/legodns\"\n")
	for _, p := range pkgs {
		if !handled[p] {
			fmt.Fprintf(&b, "%q\n", legoModule+"/providers/dns/"+p)
		}
	}
	b.WriteString(")\n\n")
	b.WriteString("// registerLego registers every lego provider that no lighter package of\n")
	b.WriteString("// dnsproviders registers, under lego's names for it.\n")
	b.WriteString("func registerLego() {\n")
	for _, p := range pkgs {
		if handled[p] {
			continue
		}
		ns := names[p]
		if r, ok := renamed[p]; ok {
			ns = r
		}
		newConfig := p + ".NewDefaultConfig"
		if errCfg[p] {
			// Its defaults come from the environment and may fail to
			// parse; options are checked later in any case.
			newConfig = fmt.Sprintf("func() *%s.Config { c, _ := %s.NewDefaultConfig(); return c }", p, p)
		}
		fmt.Fprintf(&b, "register(legodns.New(%s, %s.NewDNSProviderConfig", newConfig, p)
		if lazy[p] {
			b.WriteString(", legodns.Lazy()")
		}
		if sets, ok := requireOneOf[p]; ok {
			b.WriteString(", legodns.RequireOneOf(")
			for i, set := range sets {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%q", set)
			}
			b.WriteString(")")
		}
		b.WriteString(")")
		for _, n := range ns {
			fmt.Fprintf(&b, ", %q", n)
		}
		b.WriteString(")\n")
	}
	b.WriteString("}\n\n")
	b.WriteString("func register(f autocert.DNSProviderFactory, names ...string) {\n")
	b.WriteString("for _, n := range names {\nautocert.RegisterProvider(n, f)\n}\n}\n")
	return writeGo(file, b.Bytes())
}

func writeGo(file string, src []byte) error {
	out, err := format.Source(src)
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", file, err, src)
	}
	return os.WriteFile(file, out, 0o644)
}
