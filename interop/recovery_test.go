package interop_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/internal/syncbuf"
)

// TestStepCAShortLivedNoRenewalLoop: step-ca backdates NotBefore by one
// minute, so a certificate valid 20 s after issuance spans 80 s, and the
// lifetime rule (renew when half of 80 s remains) puts its renewal before
// its issuance. The scheduler must not renew a certificate it has just
// obtained at once, again and again.
func TestStepCAShortLivedNoRenewalLoop(t *testing.T) {
	dns, ca, dir := newStepCA(t)
	cfg := stepcaConfig(dns, ca, provShort, filepath.Join(dir, "certs"), "short.stepca.test")
	var logs syncbuf.Buffer
	p := startProvider(t, ca, cfg, &logs)
	obtained := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		<-p.SchedulerDone()
	})
	p.ScheduleRenewalAll(autocert.ContextParent(ctx))
	deadline := time.Now().Add(time.Minute)
	for {
		st := p.RenewalStatus()[0]
		if !st.Renewing && !st.NextRenewal.IsZero() {
			if !st.NextRenewal.After(obtained) {
				t.Fatalf("a certificate obtained at %v is due at %v (%s): renewed at once; %d orders so far",
					obtained, st.NextRenewal, st.Reason, ca.newOrders())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewal planned: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := ca.newOrders(); n != 1 {
		t.Errorf("%d orders right after the first, want 1", n)
	}
}

// TestStepCAForgetsAccountRunning: the step-ca's database is reset while
// autocert runs; the running Provider's forced renewal must register a new
// account and obtain the certificate.
func TestStepCAForgetsAccountRunning(t *testing.T) {
	dns, ca, dir := newStepCA(t)
	cfg := stepcaConfig(dns, ca, provACME, filepath.Join(dir, "certs"), "forget.stepca.test")
	var logs syncbuf.Buffer
	p := startProvider(t, ca, cfg, &logs)
	ca.restart(t)
	for attempt := 1; attempt <= 2; attempt++ {
		if !p.ForceExpiryAll() {
			t.Fatal("ForceExpiryAll started nothing")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		ok := p.WaitRenewalDone(ctx)
		cancel()
		if !ok {
			t.Fatal("forced renewal did not finish")
		}
		if f := p.RenewalStatus()[0].Forced; f == nil || f.Err != nil {
			t.Errorf("forced renewal %d after step-ca forgot the account: %v", attempt, f.Err)
			continue
		}
		return
	}
}
