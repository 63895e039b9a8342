package httpapi

import (
	"strings"

	"github.com/autocert-dev/autocert"
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names served on /metrics.
const (
	MetricExpiry              = "autocert_certificate_expiry_timestamp_seconds"
	MetricNextRenewal         = "autocert_certificate_next_renewal_timestamp_seconds"
	MetricRenewalSuccesses    = "autocert_renewal_successes_total"
	MetricRenewalFailures     = "autocert_renewal_failures_total"
	MetricLastRenewalDuration = "autocert_renewal_last_duration_seconds"
	MetricConsecutiveFailures = "autocert_renewal_consecutive_failures"
)

// collector reads the state of a Provider when Prometheus scrapes: the
// values are always current and there is nothing to keep in step.
type collector struct {
	p      *autocert.Provider
	events *Events

	expiry, next, successes, failures, duration, consecutive *prometheus.Desc
}

func newCollector(p *autocert.Provider, events *Events) *collector {
	return &collector{
		p:      p,
		events: events,
		expiry: prometheus.NewDesc(MetricExpiry,
			"When the certificate being served expires (its NotAfter), in Unix seconds.",
			[]string{"provider", "names"}, nil),
		next: prometheus.NewDesc(MetricNextRenewal,
			"When the certificate is next due for renewal, in Unix seconds.",
			[]string{"provider"}, nil),
		successes: prometheus.NewDesc(MetricRenewalSuccesses,
			"Certificates obtained or renewed since the process started.",
			[]string{"provider"}, nil),
		failures: prometheus.NewDesc(MetricRenewalFailures,
			"Failed attempts to obtain or renew the certificate since the process started.",
			[]string{"provider"}, nil),
		duration: prometheus.NewDesc(MetricLastRenewalDuration,
			"How long the last attempt to obtain or renew the certificate took.",
			[]string{"provider"}, nil),
		consecutive: prometheus.NewDesc(MetricConsecutiveFailures,
			"Failed attempts since the certificate was last obtained; 0 when the last attempt succeeded.",
			[]string{"provider"}, nil),
	}
}

// Describe sends the descriptions of the metrics.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.expiry
	ch <- c.next
	ch <- c.consecutive
	if c.events != nil {
		ch <- c.successes
		ch <- c.failures
		ch <- c.duration
	}
}

// Collect sends the current values.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range Statuses(c.p) {
		if st.Served() {
			ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(st.NotAfter), st.Provider, strings.Join(st.DNSNames, ","))
		}
		if st.NextRenewal != 0 {
			ch <- prometheus.MustNewConstMetric(c.next, prometheus.GaugeValue, float64(st.NextRenewal), st.Provider)
		}
		ch <- prometheus.MustNewConstMetric(c.consecutive, prometheus.GaugeValue, float64(st.Failures), st.Provider)
		if c.events == nil {
			continue
		}
		stats := c.events.Stats(st.Provider)
		ch <- prometheus.MustNewConstMetric(c.successes, prometheus.CounterValue, float64(stats.Successes), st.Provider)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(stats.Failures), st.Provider)
		if stats.LastDuration > 0 {
			ch <- prometheus.MustNewConstMetric(c.duration, prometheus.GaugeValue, stats.LastDuration.Seconds(), st.Provider)
		}
	}
}
