package autocert

import (
	"testing"
	"time"
)

func TestFailureRecordFormats(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name string
		data string
		want failureRecord
		bad  bool
	}{
		{"seed file, time only", "2026-03-04T05:06:07Z", failureRecord{Time: at, Attempts: 1}, false},
		{"seed file with newline", "2026-03-04T05:06:07Z\n", failureRecord{Time: at, Attempts: 1}, false},
		{"full record", "2026-03-04T05:06:07Z\nattempts: 3\nretry_at: 2026-03-04T09:06:07Z\nerror: boom: bad\n",
			failureRecord{Time: at, Attempts: 3, RetryAt: at.Add(4 * time.Hour), Message: "boom: bad"}, false},
		{"empty", "", failureRecord{}, true},
		{"garbage", "not a time\n", failureRecord{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFailureRecord([]byte(tt.data))
			if (err != nil) != tt.bad {
				t.Fatalf("err = %v, want error %v", err, tt.bad)
			}
			if !tt.bad && (!got.Time.Equal(tt.want.Time) || got.Attempts != tt.want.Attempts ||
				!got.RetryAt.Equal(tt.want.RetryAt) || got.Message != tt.want.Message) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if !tt.bad {
				again, err := parseFailureRecord(got.marshal())
				if err != nil || !again.Time.Equal(got.Time) || again.Attempts != got.Attempts || again.Message != got.Message {
					t.Fatalf("round trip: %+v, %v", again, err)
				}
			}
		})
	}
}

func TestFailureKeyMatchesSeedLayout(t *testing.T) {
	// sha256("certs/cert.crt|certs/priv.key")[:6], hex.
	got := failureKey("certs/cert.crt", "certs/priv.key")
	if got != "certs/.last_failure-68435196b59a" {
		t.Fatalf("failureKey = %q", got)
	}
}

func TestRetryDelay(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		attempts   int
		remaining  time.Duration
		retryAfter time.Duration
		want       time.Duration
	}{
		{1, 60 * day, 0, time.Hour},
		{2, 60 * day, 0, 2 * time.Hour},
		{3, 60 * day, 0, 4 * time.Hour},
		{5, 60 * day, 0, 16 * time.Hour},
		{6, 60 * day, 0, day},
		{40, 60 * day, 0, day},
		{1, 0, 0, time.Hour},                           // no certificate yet
		{6, 2 * time.Hour, 0, 30 * time.Minute},        // a quarter of what remains
		{1, 60 * day, 3 * time.Hour, 3 * time.Hour},    // Retry-After longer: honoured
		{4, 60 * day, 10 * time.Minute, 8 * time.Hour}, // Retry-After shorter: back-off wins
		{1, 20 * time.Minute, 2 * time.Hour, 2 * time.Hour},
		{1, 20 * time.Second, 0, 10 * time.Second}, // a quarter, but not below 10 s
		{3, 2 * time.Second, 0, 10 * time.Second},
	}
	for _, tt := range tests {
		if got := retryDelay(tt.attempts, tt.remaining, tt.retryAfter); got != tt.want {
			t.Errorf("retryDelay(%d, %v, %v) = %v, want %v", tt.attempts, tt.remaining, tt.retryAfter, got, tt.want)
		}
	}
}

// TestBackoffSequence follows consecutive failures of a 90-day
// certificate due 30 days before expiry: 1 h, 2 h, 4 h... then 24 h; and
// of a certificate with 8 h left, where a quarter of what remains caps
// each wait.
func TestBackoffSequence(t *testing.T) {
	const h = time.Hour
	tests := []struct {
		name      string
		remaining time.Duration
		want      []time.Duration
	}{
		{"30 days left", 30 * 24 * h, []time.Duration{h, 2 * h, 4 * h, 8 * h, 16 * h, 24 * h, 24 * h, 24 * h}},
		{"8 hours left", 8 * h, []time.Duration{
			h,                  // 7 h left
			105 * time.Minute,  // a quarter of 7 h; 5h15m left
			4725 * time.Second, // a quarter of 5h15m
			3543750 * time.Millisecond,
			2657812500 * time.Microsecond,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			expiry := now.Add(tt.remaining)
			rec := failureRecord{}
			for i, want := range tt.want {
				rec = failureRecord{Time: now, Attempts: rec.Attempts + 1}
				rec.RetryAt = now.Add(retryDelay(rec.Attempts, expiry.Sub(now), 0))
				if got := rec.RetryAt.Sub(now); got != want {
					t.Fatalf("wait after failure %d = %v, want %v", i+1, got, want)
				}
				now = rec.RetryAt
			}
		})
	}
}

// TestRetryAtOfRecords: a record with retry_at keeps it; one without
// (the seed's, or an attempt that never finished) waits its back-off.
func TestRetryAtOfRecords(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	expiry := at.Add(30 * 24 * time.Hour)
	if got := (failureRecord{Time: at, Attempts: 1, RetryAt: at.Add(5 * time.Hour)}).retryAt(expiry); !got.Equal(at.Add(5 * time.Hour)) {
		t.Errorf("explicit retry_at: %v", got)
	}
	seed, err := parseFailureRecord([]byte("2026-03-04T05:06:07Z"))
	if err != nil {
		t.Fatal(err)
	}
	if got := seed.retryAt(expiry); !got.Equal(at.Add(time.Hour)) {
		t.Errorf("seed record: retry at %v, want an hour after its time", got)
	}
	if got := (failureRecord{Time: at, Attempts: 4}).retryAt(time.Time{}); !got.Equal(at.Add(8 * time.Hour)) {
		t.Errorf("fourth attempt without a certificate: retry at %v, want 8 h later", got)
	}
}
