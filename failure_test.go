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
	}
	for _, tt := range tests {
		if got := retryDelay(tt.attempts, tt.remaining, tt.retryAfter); got != tt.want {
			t.Errorf("retryDelay(%d, %v, %v) = %v, want %v", tt.attempts, tt.remaining, tt.retryAfter, got, tt.want)
		}
	}
}
