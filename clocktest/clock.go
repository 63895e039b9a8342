// Package clocktest provides a clock for tests of programs that use
// autocert: its time moves only when the test says so, and its timers fire
// when that time reaches their deadline. Passed to autocert.WithClock, it
// lets a test drive the renewal scheduler through hours and days of due
// times, back-offs and renewal-information refreshes in milliseconds.
package clocktest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/autocert-dev/autocert"
)

// Clock is an autocert.Clock whose time is set by the test. Its zero value
// is not usable: call New. Its methods are safe for concurrent use.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	timers  map[*timer]struct{} // armed timers
	changed chan struct{}       // closed and replaced whenever the set of armed timers changes
}

var _ autocert.Clock = (*Clock)(nil)

// New returns a Clock reading start.
func New(start time.Time) *Clock {
	return &Clock{
		now:     start,
		timers:  make(map[*timer]struct{}),
		changed: make(chan struct{}),
	}
}

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires once the clock reaches Now()+d. Like
// a *time.Timer of Go 1.23 and later, its channel never delivers a value
// from before the last Stop or Reset.
func (c *Clock) NewTimer(d time.Duration) autocert.Timer {
	t := &timer{c: c, ch: make(chan time.Time, 1)}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armLocked(t, d)
	return t
}

// Advance moves the clock forward by d and fires every timer whose deadline
// it reaches, earliest first.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(c.now.Add(d))
}

// Set moves the clock to t, forward or back, and fires every timer whose
// deadline is not after t. Moving back does not re-arm fired timers.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(t)
}

// Timers returns the deadlines of the armed timers, earliest first.
func (c *Clock) Timers() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Time, 0, len(c.timers))
	for t := range c.timers {
		out = append(out, t.deadline)
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// WaitForTimer blocks until a timer is armed with a deadline for which
// match returns true, and returns that deadline; it returns ctx's error if
// ctx ends first. A program arms its timer after it has finished reacting
// to the time, so this is how a test knows the program is idle before it
// moves the clock again.
func (c *Clock) WaitForTimer(ctx context.Context, match func(deadline time.Time) bool) (time.Time, error) {
	for {
		c.mu.Lock()
		var found []time.Time
		for t := range c.timers {
			if match(t.deadline) {
				found = append(found, t.deadline)
			}
		}
		changed := c.changed
		c.mu.Unlock()
		if len(found) > 0 {
			return slices.MinFunc(found, time.Time.Compare), nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

func (c *Clock) setLocked(now time.Time) {
	c.now = now
	var due []*timer
	for t := range c.timers {
		if !t.deadline.After(now) {
			due = append(due, t)
		}
	}
	slices.SortFunc(due, func(a, b *timer) int { return a.deadline.Compare(b.deadline) })
	for _, t := range due {
		delete(c.timers, t)
		select {
		case t.ch <- now:
		default:
		}
	}
	if len(due) > 0 {
		c.notifyLocked()
	}
}

// armLocked sets t to fire d from now, dropping a value not yet received.
func (c *Clock) armLocked(t *timer, d time.Duration) {
	drain(t.ch)
	t.deadline = c.now.Add(d)
	if d <= 0 {
		t.ch <- c.now
		delete(c.timers, t)
	} else {
		c.timers[t] = struct{}{}
	}
	c.notifyLocked()
}

func (c *Clock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func drain(ch chan time.Time) {
	select {
	case <-ch:
	default:
	}
}

// timer is a Clock's autocert.Timer.
type timer struct {
	c        *Clock
	ch       chan time.Time
	deadline time.Time // guarded by c.mu
}

func (t *timer) C() <-chan time.Time { return t.ch }

// Stop disarms the timer; it reports whether the timer was armed.
func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, armed := t.c.timers[t]
	delete(t.c.timers, t)
	drain(t.ch)
	if armed {
		t.c.notifyLocked()
	}
	return armed
}

// Reset re-arms the timer to fire d from now; it reports whether the timer
// was armed.
func (t *timer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, armed := t.c.timers[t]
	t.c.armLocked(t, d)
	return armed
}
