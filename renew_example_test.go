package autocert_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/autocert-dev/autocert"
	"github.com/rs/zerolog"
)

// Renewal runs in the background once ScheduleRenewalAll is called, and
// stops with the context of its parent. An operator can force a renewal
// and learn, per certificate, how it went. The example uses the "pseudo"
// provider (self-signed certificates) so that it runs anywhere.
func ExampleProvider_ScheduleRenewalAll() {
	dir, err := os.MkdirTemp("", "autocert-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := &autocert.Config{
		Provider: autocert.ProviderPseudo,
		Domains:  []string{"dev.example"},
		CertPath: filepath.Join(dir, "cert.crt"),
		KeyPath:  filepath.Join(dir, "priv.key"),
	}
	events := make(chan autocert.Event, 8)
	notifier := autocert.NotifierFunc(func(_ context.Context, e autocert.Event) error {
		events <- e
		return nil
	})
	p, err := autocert.NewProvider(cfg, nil, nil, autocert.WithNotifier(notifier), autocert.WithLogger(zerolog.Nop()))
	if err != nil {
		log.Fatal(err)
	}
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		log.Fatal(err)
	}
	fmt.Println((<-events).Title())

	ctx, cancel := context.WithCancel(context.Background())
	p.ScheduleRenewalAll(autocert.ContextParent(ctx))
	fmt.Println((<-events).Title())

	if p.ForceExpiryAll() && p.WaitRenewalDone(ctx) {
		for _, st := range p.RenewalStatus() {
			fmt.Println(st.Provider, "forced renewal succeeded:", st.Forced.Err == nil)
		}
	}
	fmt.Println((<-events).Title())

	cancel()
	<-p.SchedulerDone()
	// Output:
	// certificate obtained: main
	// certificate expiries: 1 certificate
	// main forced renewal succeeded: true
	// certificate renewed: main
}
