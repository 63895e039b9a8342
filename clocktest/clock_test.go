package clocktest_test

import (
	"context"
	"testing"
	"time"

	"github.com/autocert-dev/autocert/clocktest"
)

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func fired(ch <-chan time.Time) (time.Time, bool) {
	select {
	case t := <-ch:
		return t, true
	default:
		return time.Time{}, false
	}
}

func TestTimersFireWhenTheClockReachesThem(t *testing.T) {
	c := clocktest.New(start)
	a := c.NewTimer(time.Hour)
	b := c.NewTimer(3 * time.Hour)
	if got := c.Timers(); len(got) != 2 || !got[0].Equal(start.Add(time.Hour)) || !got[1].Equal(start.Add(3*time.Hour)) {
		t.Fatalf("Timers = %v", got)
	}
	c.Advance(59 * time.Minute)
	if _, ok := fired(a.C()); ok {
		t.Fatal("fired before its deadline")
	}
	c.Advance(2 * time.Hour)
	if at, ok := fired(a.C()); !ok || !at.Equal(start.Add(179*time.Minute)) {
		t.Fatalf("first timer: %v %v, want fired with the clock's time", at, ok)
	}
	if _, ok := fired(b.C()); ok {
		t.Fatal("second timer fired early")
	}
	c.Set(start.Add(3 * time.Hour))
	if _, ok := fired(b.C()); !ok {
		t.Fatal("second timer did not fire at its deadline")
	}
	if n := len(c.Timers()); n != 0 {
		t.Fatalf("%d timers armed after all fired", n)
	}
	if !c.Now().Equal(start.Add(3 * time.Hour)) {
		t.Fatalf("Now = %v", c.Now())
	}
}

func TestStopAndResetDropStaleValues(t *testing.T) {
	c := clocktest.New(start)
	tm := c.NewTimer(time.Minute)
	if !tm.Stop() {
		t.Fatal("Stop of an armed timer reported false")
	}
	if tm.Stop() {
		t.Fatal("second Stop reported true")
	}
	c.Advance(time.Hour)
	if _, ok := fired(tm.C()); ok {
		t.Fatal("stopped timer fired")
	}

	tm.Reset(time.Minute)
	c.Advance(time.Minute) // fires; the value is not received
	if tm.Reset(time.Hour) {
		t.Fatal("Reset of a fired timer reported it armed")
	}
	if _, ok := fired(tm.C()); ok {
		t.Fatal("a value from before Reset was delivered")
	}
	if !tm.Reset(0) {
		t.Fatal("Reset of an armed timer reported false")
	}
	if _, ok := fired(tm.C()); !ok {
		t.Fatal("Reset(0) did not fire at once")
	}
}

func TestWaitForTimer(t *testing.T) {
	c := clocktest.New(start)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	want := start.Add(2 * time.Hour)
	go func() {
		time.Sleep(10 * time.Millisecond)
		c.NewTimer(time.Hour)
		c.NewTimer(2 * time.Hour)
	}()
	got, err := c.WaitForTimer(ctx, func(d time.Time) bool { return d.After(start.Add(time.Hour)) })
	if err != nil || !got.Equal(want) {
		t.Fatalf("WaitForTimer = %v, %v; want %v", got, err, want)
	}
	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	if _, err := c.WaitForTimer(short, func(d time.Time) bool { return d.After(want) }); err == nil {
		t.Fatal("WaitForTimer found a timer that was never armed")
	}
}
