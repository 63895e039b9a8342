package provider_test

import (
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/acmetest"
)

// TestProgressReportsEachStep: a command showing progress sees every step
// of a real order, in order, for each name.
func TestProgressReportsEachStep(t *testing.T) {
	ca := acmetest.New(t)
	dir := t.TempDir()
	cfg := ca.Config("example.com", "*.example.com")
	cfg.CertPath, cfg.KeyPath, cfg.ACMEKeyPath = filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key"), filepath.Join(dir, "acme.key")
	var mu sync.Mutex
	var got []autocert.Progress
	p := newProvider(t, cfg, autocert.WithProgress(func(pr autocert.Progress) {
		mu.Lock()
		got = append(got, pr)
		mu.Unlock()
	}))
	if err := p.ObtainCertIfNotExistsAll(); err != nil {
		t.Fatal(err)
	}
	first := map[autocert.Step]int{}
	count := map[autocert.Step]int{}
	for i, pr := range got {
		if pr.Provider != "main" {
			t.Errorf("report %d names provider %q", i, pr.Provider)
		}
		if _, ok := first[pr.Step]; !ok {
			first[pr.Step] = i
		}
		count[pr.Step]++
	}
	order := []autocert.Step{autocert.StepAccount, autocert.StepOrder, autocert.StepPresent, autocert.StepPropagation,
		autocert.StepValidation, autocert.StepFinalize, autocert.StepSaved}
	for i, s := range order {
		if _, ok := first[s]; !ok {
			t.Fatalf("step %s never reported; got %v", s, got)
		}
		if i > 0 && first[s] < first[order[i-1]] {
			t.Errorf("step %s reported before %s", s, order[i-1])
		}
	}
	// One TXT record per name: the apex and the wildcard share a name but
	// have two authorizations.
	if count[autocert.StepPresent] != 2 || count[autocert.StepValidation] != 2 || count[autocert.StepCleanUp] != 2 {
		t.Errorf("per-name steps: present %d, validation %d, cleanup %d; want 2 each",
			count[autocert.StepPresent], count[autocert.StepValidation], count[autocert.StepCleanUp])
	}
	if !slices.ContainsFunc(got, func(pr autocert.Progress) bool { return pr.Step == autocert.StepPresent && pr.Domain == "example.com" }) {
		t.Error("present step does not name the domain")
	}

	// A restart that finds the certificate stored reports nothing.
	got = nil
	again := newProvider(t, cfg, autocert.WithProgress(func(pr autocert.Progress) { got = append(got, pr) }))
	if err := again.LoadCertsAll(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("loading stored certificates reported %v", got)
	}
	if _, err := again.GetCert(nil); err != nil {
		t.Errorf("LoadCertsAll did not serve the stored certificate: %v", err)
	}
}
