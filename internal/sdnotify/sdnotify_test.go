package sdnotify_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autocert-dev/autocert/internal/sdnotify"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// listener is the service manager's end: a datagram socket that records
// the sender's credentials, as systemd does to check NotifyAccess=.
type listener struct {
	conn *net.UnixConn
	addr string
}

func listen(t *testing.T, addr string) *listener {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	raw, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return &listener{conn: conn, addr: addr}
}

// receive returns the next datagram and the pid of its sender.
func (l *listener) receive(t *testing.T) (string, int32) {
	t.Helper()
	if err := l.conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf, oob := make([]byte, 4096), make([]byte, 256)
	n, oobn, _, _, err := l.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatalf("no datagram received: %v", err)
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages %v: %v", msgs, err)
	}
	cred, err := syscall.ParseUnixCredentials(&msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n]), cred.Pid
}

// shortDir returns a directory whose socket paths fit in sun_path, which
// t.TempDir (named after the test) may not.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func abstractName(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	rand.Read(b)
	return "@autocert-sdnotify-test-" + hex.EncodeToString(b)
}

// TestNotifySend: a Notifier sends its assignments in one datagram, line
// breaks of a status turned into spaces, to a socket at a path and to one
// in the abstract namespace, with the process's own credentials (what
// NotifyAccess=main checks).
func TestNotifySend(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"path", func(t *testing.T) string { return filepath.Join(shortDir(t), "notify.sock") }},
		{"abstract", abstractName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := listen(t, tc.addr(t))
			n, err := sdnotify.New(l.addr)
			if err != nil {
				t.Fatal(err)
			}
			if n.String() != l.addr {
				t.Errorf("String() = %q, want %q", n.String(), l.addr)
			}
			for _, tt := range []struct {
				send []string
				want string
			}{
				{[]string{sdnotify.Ready, sdnotify.Status("serving 2 certificates")}, "READY=1\nSTATUS=serving 2 certificates"},
				{[]string{sdnotify.Status("renewal of main failed:\nline two\r\n")}, "STATUS=renewal of main failed: line two  "},
				{[]string{sdnotify.Watchdog}, "WATCHDOG=1"},
				{[]string{sdnotify.Stopping}, "STOPPING=1"},
			} {
				if err := n.Send(tt.send...); err != nil {
					t.Fatalf("Send(%q): %v", tt.send, err)
				}
				got, pid := l.receive(t)
				if got != tt.want {
					t.Errorf("Send(%q) delivered %q, want %q", tt.send, got, tt.want)
				}
				if pid != int32(os.Getpid()) {
					t.Errorf("sender pid %d, want ours (%d)", pid, os.Getpid())
				}
			}
		})
	}
}

// TestNotifyNil: without a service manager, FromEnv returns a nil
// Notifier, which sends nothing and reports no error.
func TestNotifyNil(t *testing.T) {
	t.Parallel()
	n, interval, err := sdnotify.FromEnv(func(string) string { return "" }, os.Getpid())
	if n != nil || interval != 0 || err != nil {
		t.Fatalf("FromEnv of an empty environment: %v, %v, %v", n, interval, err)
	}
	if err := n.Send(sdnotify.Ready); err != nil {
		t.Errorf("nil Notifier: %v", err)
	}
	if n.String() != "none" {
		t.Errorf("nil Notifier String() = %q", n.String())
	}
}

// TestNotifyFromEnv: FromEnv reads the socket and the watchdog of the
// environment, honouring WATCHDOG_PID.
func TestNotifyFromEnv(t *testing.T) {
	t.Parallel()
	self := os.Getpid()
	other := strconv.Itoa(self + 1)
	for _, tc := range []struct {
		name     string
		env      map[string]string
		interval time.Duration
		err      string
	}{
		{"socket only", map[string]string{"NOTIFY_SOCKET": "/run/systemd/notify"}, 0, ""},
		{"watchdog", map[string]string{"NOTIFY_SOCKET": "@notify", "WATCHDOG_USEC": "30000000"}, 15 * time.Second, ""},
		{"watchdog for us", map[string]string{"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": strconv.Itoa(self)}, 500 * time.Millisecond, ""},
		{"watchdog for another process", map[string]string{"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": other}, 0, ""},
		{"watchdog without socket", map[string]string{"WATCHDOG_USEC": "1000000"}, 0, ""},
		{"bad socket", map[string]string{"NOTIFY_SOCKET": "notify.sock"}, 0, `NOTIFY_SOCKET="notify.sock": unsupported address`},
		{"bad watchdog", map[string]string{"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "1s"}, 0, `WATCHDOG_USEC="1s": want a positive number of microseconds`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, interval, err := sdnotify.FromEnv(func(k string) string { return tc.env[k] }, self)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || n != nil {
					t.Fatalf("FromEnv: %v, %v; want the error %q", n, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (n == nil) != (tc.env["NOTIFY_SOCKET"] == "") || interval != tc.interval {
				t.Errorf("FromEnv: %v, interval %v; want interval %v", n, interval, tc.interval)
			}
		})
	}
}

// TestWatchdogInterval: the interval is half of WATCHDOG_USEC; no watchdog
// when it is unset or meant for another process; bad values are errors
// naming the variable.
func TestWatchdogInterval(t *testing.T) {
	t.Parallel()
	const self = 4242
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
		err       string
	}{
		{"", "", 0, ""},
		{"", "4242", 0, ""},
		{"60000000", "", 30 * time.Second, ""},
		{"60000000", "4242", 30 * time.Second, ""},
		{"60000000", "4243", 0, ""},
		{"2", "", time.Microsecond, ""},
		{"1", "", time.Microsecond, ""},
		{"0", "", 0, "WATCHDOG_USEC=\"0\": want a positive number"},
		{"-1", "", 0, "WATCHDOG_USEC=\"-1\""},
		{"60s", "", 0, "WATCHDOG_USEC=\"60s\""},
		{"18446744073709551615", "", 0, "WATCHDOG_USEC=\"18446744073709551615\""},
		{"60000000", "me", 0, "WATCHDOG_PID=\"me\": not a process id"},
		{"60000000", "0", 0, "WATCHDOG_PID=\"0\""},
	} {
		got, err := sdnotify.WatchdogInterval(tc.usec, tc.pid, self)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("WatchdogInterval(%q, %q): %v, %v; want the error %q", tc.usec, tc.pid, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("WatchdogInterval(%q, %q) = %v, %v; want %v", tc.usec, tc.pid, got, err, tc.want)
		}
	}
}

// TestNotifyErrors: addresses that are not a unix socket path or an
// abstract name are refused by New; Send refuses what is not one
// assignment per line, and reports a socket that is not there.
func TestNotifyErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ addr, err string }{
		{"", "NOTIFY_SOCKET is empty"},
		{"@", "the abstract socket name is empty"},
		{"run/notify", "unsupported address"},
		{"vsock:2:1234", "unsupported address"},
		{"/" + strings.Repeat("a", 108), "address of 109 bytes, longer than the 108"},
	} {
		if n, err := sdnotify.New(tc.addr); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("New(%q): %v, %v; want the error %q", tc.addr, n, err, tc.err)
		}
	}

	l := listen(t, filepath.Join(shortDir(t), "notify.sock"))
	n, err := sdnotify.New(l.addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{nil, {"READY"}, {"=1"}, {"READY=1", "STATUS=a\nb"}, {"STATUS=a\x00b"}} {
		if err := n.Send(bad...); err == nil {
			t.Errorf("Send(%q): no error", bad)
		}
	}
	// Nothing was sent: the next datagram is the good one.
	if err := n.Send(sdnotify.Ready); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.receive(t); got != "READY=1" {
		t.Errorf("received %q", got)
	}

	gone, err := sdnotify.New(filepath.Join(shortDir(t), "missing.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := gone.Send(sdnotify.Ready); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.sock") {
		t.Errorf("Send to a missing socket: %v; want an error naming it, wrapping fs.ErrNotExist", err)
	}
	if err := l.conn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Send(sdnotify.Ready); err == nil {
		t.Error("Send to a closed socket: no error")
	}
}

// TestNotifyFullQueue: a service manager that does not read its socket
// does not hang the service: once the socket's queue is full, Send gives
// up after its timeout.
func TestNotifyFullQueue(t *testing.T) {
	t.Parallel()
	l := listen(t, abstractName(t))
	n, err := sdnotify.New(l.addr)
	if err != nil {
		t.Fatal(err)
	}
	status := sdnotify.Status(strings.Repeat("x", 1000))
	for i := 0; ; i++ {
		err := n.Send(status)
		if err == nil {
			if i == 100000 {
				t.Fatal("100000 datagrams queued without a reader")
			}
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("send %d: %v; want a timeout", i+1, err)
		}
		t.Logf("the socket queued %d datagrams, then Send timed out: %v", i, err)
		return
	}
}
