package autocert

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// sharedConfig is a config of n "pseudo" certificates whose files are all
// in dir.
func sharedConfig(dir string, n int) *Config {
	path := func(i int, ext string) string { return filepath.Join(dir, fmt.Sprintf("h%d.%s", i, ext)) }
	cfg := &Config{Provider: ProviderPseudo, Domains: []string{"h0.example.com"}, CertPath: path(0, "crt"), KeyPath: path(0, "key")}
	for i := 1; i < n; i++ {
		cfg.Extra = append(cfg.Extra, ConfigExtra{Domains: []string{fmt.Sprintf("h%d.example.com", i)},
			CertPath: path(i, "crt"), KeyPath: path(i, "key")})
	}
	return cfg
}

// TestRecordListing: the listing of a directory holding the records of
// many certificates tells which records are there, and a record there is
// read as without a listing; a directory holding a journal (a Store
// interrupted, here one of a failure record) is not listed, so that its
// records are read, the journal completed first.
func TestRecordListing(t *testing.T) {
	const n = 2 * minListed
	rec := failureRecord{Time: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), Attempts: 2, Message: "order refused", Serial: noSerial}
	tests := []struct {
		name    string
		journal bool // the record of certificate 3 is in a journal, not yet in its files
	}{
		{"record files", false},
		{"record in the journal of an interrupted store", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			p, err := New(ctx, sharedConfig(dir, n), WithLogger(zerolog.Nop()))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			c3 := p.certs[3]
			entries := []Entry{
				{Key: c3.failureKey, Value: rec.Time.AppendFormat(nil, time.RFC3339), Private: true},
				{Key: c3.detailKey, Value: rec.marshal(), Private: true},
			}
			if tt.journal {
				j := journal{}
				for _, e := range entries {
					j.Entries = append(j.Entries, journalEntry(e))
				}
				data, err := json.Marshal(j)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, journalName), data, 0o600); err != nil {
					t.Fatal(err)
				}
			} else if err := p.sched.storage.Store(ctx, entries...); err != nil {
				t.Fatal(err)
			}

			l := listRecords(p.sched.storage, p.certs)
			if _, listed := l[dir]; listed == tt.journal {
				t.Fatalf("directory listed: %v, want %v", listed, !tt.journal)
			}
			for i, c := range p.certs {
				got, ok := c.loadFailureListed(ctx, l)
				if want := i == 3; ok != want {
					t.Fatalf("certificate %d: record found %v, want %v", i, ok, want)
				}
				if ok && (!got.Time.Equal(rec.Time) || got.Attempts != rec.Attempts || got.Message != rec.Message) {
					t.Errorf("certificate %d: record %+v, want %+v", i, got, rec)
				}
			}
		})
	}
}

// TestFirstPassReadsListedRecords: the scheduler's first pass over
// certificates kept in one directory (their records found by listing it)
// knows the failure recorded for one of them, as RenewalStatus shows, and
// none for the others.
func TestFirstPassReadsListedRecords(t *testing.T) {
	const n = 2 * minListed
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := sharedConfig(dir, n)
	first, err := New(ctx, cfg, WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	if err := first.ObtainAll(ctx, false); err != nil {
		t.Fatal(err)
	}
	rec := failureRecord{Time: time.Now().Add(-time.Minute).UTC().Truncate(time.Second), Attempts: 3,
		Message: "order refused", Serial: serialHex(first.certs[5].current().Leaf)}
	first.certs[5].storeFailure(ctx, rec)

	p, err := New(ctx, cfg, WithLogger(zerolog.Nop()))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ObtainAll(ctx, false); err != nil {
		t.Fatal(err)
	}
	p.Start(ctx)
	defer func() {
		cancel()
		<-p.SchedulerDone()
	}()
	var st []RenewalStatus
	for deadline := time.Now().Add(time.Minute); ; {
		st = p.RenewalStatus()
		looked := true
		for _, s := range st {
			looked = looked && !s.NextRenewal.IsZero()
		}
		if looked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the scheduler never looked at every certificate")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, s := range st {
		want := 0
		if i == 5 {
			want = rec.Attempts
		}
		if s.Failures != want {
			t.Errorf("%s: %d failures, want %d", s.Provider, s.Failures, want)
		}
		if i == 5 && (!s.LastFailure.Equal(rec.Time) || s.LastError != rec.Message) {
			t.Errorf("%s: last failure %v %q, want %v %q", s.Provider, s.LastFailure, s.LastError, rec.Time, rec.Message)
		}
	}
}
