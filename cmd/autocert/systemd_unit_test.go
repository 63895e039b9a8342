package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The files of contrib/systemd, from this package's directory.
const (
	unitFile     = "../../contrib/systemd/autocert.service"
	sysusersFile = "../../contrib/systemd/autocert.sysusers"
)

// libraryStartupCooldown is the library's startupCooldown (failure.go):
// within it of an unfinished attempt, a second crash in a row is taken for
// a crash loop.
const libraryStartupCooldown = 15 * time.Second

// unit is a parsed unit file: section, key, the values in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: %q is not KEY=VALUE in a section", path, n, line)
			}
			u[section][key] = append(u[section][key], value)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// get returns the last value of key (the one systemd uses).
func (u unit) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// systemdTool returns the path of a program of Debian's systemd package;
// without it the test fails in CI and is skipped elsewhere.
func systemdTool(t *testing.T, name string) string {
	t.Helper()
	if bin, err := exec.LookPath(name); err == nil {
		return bin
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed: .ci/systemd.sh must run before the tests", name)
	}
	t.Skipf("%s is not installed: run .ci/systemd.sh (Debian's systemd package) to run this test", name)
	return ""
}

// TestSystemdUnitSettings: the unit of contrib/systemd runs "autocert run"
// as Type=notify with a watchdog, as a dedicated user with a state and a
// configuration directory, hardened, the certificate directory writable;
// it restarts on failure but not after a bad configuration (exit 2), and
// sooner than the library's start-up cool-down, so that a crash loop in
// the middle of orders is recognised.
func TestSystemdUnitSettings(t *testing.T) {
	t.Parallel()
	u := parseUnit(t, unitFile)
	for _, tc := range []struct{ section, key, want string }{
		{"Unit", "Wants", "network-online.target"},
		{"Unit", "After", "network-online.target"},
		{"Service", "Type", "notify"},
		{"Service", "NotifyAccess", "main"},
		{"Service", "ExecStart", "/usr/local/bin/autocert -config %E/autocert/autocert.yml run"},
		{"Service", "WorkingDirectory", "%S/autocert"},
		{"Service", "User", "autocert"},
		{"Service", "Group", "autocert"},
		{"Service", "StateDirectory", "autocert"},
		{"Service", "ConfigurationDirectory", "autocert"},
		{"Service", "Restart", "on-failure"},
		{"Service", "RestartPreventExitStatus", strconv.Itoa(exitUsage)},
		{"Service", "ProtectSystem", "strict"},
		{"Service", "ProtectHome", "yes"},
		{"Service", "PrivateTmp", "yes"},
		{"Service", "NoNewPrivileges", "yes"},
		{"Service", "CapabilityBoundingSet", ""},
		{"Install", "WantedBy", "multi-user.target"},
	} {
		if _, ok := u[tc.section][tc.key]; !ok {
			t.Errorf("[%s] %s= is not set", tc.section, tc.key)
		} else if got := u.get(tc.section, tc.key); got != tc.want {
			t.Errorf("[%s] %s=%s, want %s", tc.section, tc.key, got, tc.want)
		}
	}
	durations := map[string]time.Duration{}
	for _, key := range []string{"WatchdogSec", "RestartSec", "TimeoutStartSec", "TimeoutStopSec"} {
		d, err := time.ParseDuration(strings.ReplaceAll(u.get("Service", key), "min", "m"))
		if err != nil || d <= 0 {
			t.Errorf("%s=%q: want a positive time span (%v)", key, u.get("Service", key), err)
		}
		durations[key] = d
	}
	if d := durations["RestartSec"]; d >= libraryStartupCooldown {
		t.Errorf("RestartSec=%v, want less than the start-up cool-down of %v", d, libraryStartupCooldown)
	}
	paths := u["Service"]["ReadWritePaths"]
	if len(paths) == 0 {
		t.Error("ReadWritePaths= is not set: the certificate directory is read-only under ProtectSystem=strict")
	}
	for _, p := range paths {
		if !filepath.IsAbs(p) || strings.HasPrefix(p, "/var/lib/autocert") {
			t.Errorf("ReadWritePaths=%s: want an absolute path outside the state directory", p)
		}
	}
	if _, ok := u["Service"]["DynamicUser"]; ok {
		t.Error("DynamicUser= with User=autocert")
	}
}

// TestSystemdUnitVerify: systemd-analyze verify finds nothing to say about
// the unit (run with the command built for the tests in ExecStart, which
// must exist), and systemd-analyze security rates its exposure at most 2.0
// of 10.
func TestSystemdUnitVerify(t *testing.T) {
	t.Parallel()
	analyze := systemdTool(t, "systemd-analyze")
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(data), "ExecStart=/usr/local/bin/autocert ", "ExecStart="+binary+" ", 1)
	if text == string(data) {
		t.Fatal("no ExecStart=/usr/local/bin/autocert in the unit")
	}
	path := filepath.Join(t.TempDir(), "autocert.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The threshold is on systemd's scale of 0 to 100; it prints 0.0 to 10.0.
	out, err = exec.Command(analyze, "security", "--offline=true", "--threshold=20", "--no-pager", path).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for autocert\.service: (\d+\.\d+) (\S+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	t.Logf("systemd-analyze security: exposure %s %s", m[1], m[2])
}

// TestSystemdSysusers: systemd-sysusers creates from autocert.sysusers the
// user and group the unit names, as a system user with no login shell and
// the state directory as home.
func TestSystemdSysusers(t *testing.T) {
	t.Parallel()
	sysusers := systemdTool(t, "systemd-sysusers")
	u := parseUnit(t, unitFile)
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(sysusersFile)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd := exec.Command(sysusers, "--root="+root, "-")
	cmd.Stdin = in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd, err := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	group, err := os.ReadFile(filepath.Join(root, "etc", "group"))
	if err != nil {
		t.Fatal(err)
	}
	user, grp := u.get("Service", "User"), u.get("Service", "Group")
	var fields []string
	for _, line := range strings.Split(string(passwd), "\n") {
		if f := strings.Split(line, ":"); len(f) == 7 && f[0] == user {
			fields = f
		}
	}
	if fields == nil {
		t.Fatalf("no user %s in\n%s", user, passwd)
	}
	uid, _ := strconv.Atoi(fields[2])
	if uid <= 0 || uid >= 1000 || fields[5] != "/var/lib/autocert" || !strings.HasSuffix(fields[6], "nologin") {
		t.Errorf("passwd entry %q: want a system uid, home /var/lib/autocert, no login shell", strings.Join(fields, ":"))
	}
	if !slices.ContainsFunc(strings.Split(string(group), "\n"), func(l string) bool {
		f := strings.Split(l, ":")
		return len(f) == 4 && f[0] == grp && f[2] == fields[3]
	}) {
		t.Errorf("no group %s with gid %s in\n%s", grp, fields[3], group)
	}
}
