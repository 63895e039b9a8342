// Package sdnotify speaks the notification protocol of the service manager
// (systemd's sd_notify(3)): a service sends newline-separated assignments
// such as READY=1 or STATUS=... in one datagram to the unix socket named by
// $NOTIFY_SOCKET, and, when $WATCHDOG_USEC is set, WATCHDOG=1 at least that
// often.
//
// It uses the standard library only. A nil *Notifier (no service manager
// listening) sends nothing.
package sdnotify

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
)

// The environment variables through which the service manager describes
// the protocol to the service.
const (
	EnvSocket       = "NOTIFY_SOCKET" // the socket: an absolute path, or "@name" in the abstract namespace
	EnvWatchdogUSec = "WATCHDOG_USEC" // the watchdog timeout, in microseconds
	EnvWatchdogPID  = "WATCHDOG_PID"  // the process the watchdog is meant for; unset: the one that reads it
)

// Assignments of the protocol that take no argument.
const (
	Ready    = "READY=1"    // start-up has finished
	Stopping = "STOPPING=1" // shutdown has begun
	Watchdog = "WATCHDOG=1" // the service is alive
)

// Status returns the STATUS= assignment for text, a one-line description
// of what the service is doing: line breaks become spaces.
func Status(text string) string {
	return "STATUS=" + strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, text)
}

// sendTimeout bounds one send: a unix datagram socket blocks its sender
// while the receiver's queue is full, and a service manager that does not
// read must not hang the service.
const sendTimeout = 5 * time.Second

// maxAddr is the size of sun_path in a Linux unix socket address; an
// abstract name takes its leading NUL from it.
const maxAddr = 108

// Notifier sends notifications to the service manager's socket.
type Notifier struct {
	addr *net.UnixAddr
}

// New returns a Notifier sending to socket, the value of $NOTIFY_SOCKET: an
// absolute path, or a name in the abstract namespace starting with '@'.
// Other kinds of address (vsock:) are not supported.
func New(socket string) (*Notifier, error) {
	switch {
	case socket == "":
		return nil, fmt.Errorf("%s is empty", EnvSocket)
	case socket == "@":
		return nil, fmt.Errorf("%s=%q: the abstract socket name is empty", EnvSocket, socket)
	case socket[0] != '/' && socket[0] != '@':
		return nil, fmt.Errorf("%s=%q: unsupported address: want an absolute path or @name", EnvSocket, socket)
	case len(socket) > maxAddr:
		return nil, fmt.Errorf("%s: address of %d bytes, longer than the %d of a unix socket", EnvSocket, len(socket), maxAddr)
	}
	// The net package maps a leading '@' to the NUL of an abstract address.
	return &Notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}}, nil
}

// FromEnv returns the Notifier of $NOTIFY_SOCKET and the interval at which
// to send Watchdog (see WatchdogInterval), reading the variables through
// getenv; pid is the process's own id. The Notifier is nil, and the
// interval zero, when $NOTIFY_SOCKET is unset: no service manager listens.
func FromEnv(getenv func(string) string, pid int) (*Notifier, time.Duration, error) {
	socket := getenv(EnvSocket)
	if socket == "" {
		return nil, 0, nil
	}
	n, err := New(socket)
	if err != nil {
		return nil, 0, err
	}
	interval, err := WatchdogInterval(getenv(EnvWatchdogUSec), getenv(EnvWatchdogPID), pid)
	if err != nil {
		return nil, 0, err
	}
	return n, interval, nil
}

// WatchdogInterval returns how often process self should send Watchdog:
// half the timeout usec (the value of $WATCHDOG_USEC), as sd_watchdog_enabled(3)
// advises. It returns 0 when no watchdog is asked for: usec is empty, or pid
// (the value of $WATCHDOG_PID, when set) names another process.
func WatchdogInterval(usec, pid string, self int) (time.Duration, error) {
	if usec == "" {
		return 0, nil
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p <= 0 {
			return 0, fmt.Errorf("%s=%q: not a process id", EnvWatchdogPID, pid)
		}
		if p != self {
			return 0, nil
		}
	}
	u, err := strconv.ParseUint(usec, 10, 64)
	if err != nil || u == 0 || u > math.MaxInt64/uint64(time.Microsecond) {
		return 0, fmt.Errorf("%s=%q: want a positive number of microseconds", EnvWatchdogUSec, usec)
	}
	timeout := time.Duration(u) * time.Microsecond
	return max(timeout/2, time.Microsecond), nil
}

// Send sends the assignments (such as Ready and Status("...")) in one
// datagram. Each must be KEY=VALUE on one line. A nil Notifier sends
// nothing and returns nil.
func (n *Notifier) Send(assignments ...string) error {
	if n == nil {
		return nil
	}
	if len(assignments) == 0 {
		return errors.New("sdnotify: nothing to send")
	}
	for _, a := range assignments {
		key, _, ok := strings.Cut(a, "=")
		if !ok || key == "" || strings.ContainsAny(a, "\n\x00") {
			return fmt.Errorf("sdnotify: %q is not one KEY=VALUE line", a)
		}
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(sendTimeout)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	if _, err := conn.Write([]byte(strings.Join(assignments, "\n"))); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// String returns the socket's address, for messages.
func (n *Notifier) String() string {
	if n == nil {
		return "none"
	}
	return n.addr.Name
}
