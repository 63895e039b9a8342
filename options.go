package autocert

import (
	"os"
	"time"

	"github.com/autocert-dev/autocert/internal/redact"
	"github.com/go-acme/lego/v4/lego"
	"github.com/rs/zerolog"
)

// settings are the process-side choices of a Provider, made with Options
// and shared by all its certificates.
type settings struct {
	logger    zerolog.Logger
	storage   Storage // nil: the config's storage block, opened by New
	clock     Clock
	notifiers []Notifier
	progress  func(Progress)
	reread    time.Duration // periodic re-read of a shared storage; storageRereadInterval when 0
	fileCheck time.Duration // periodic look at the files of a FileStorage; fileCheckInterval when 0
	// noFileNotify turns off file-system notifications, leaving the
	// periodic look (tests of that fallback).
	noFileNotify bool
	// account is the main block's account given to NewProvider (the
	// seed's flow); nil when New loads it.
	account *givenAccount
	// rateLimits are the limits set with WithRateLimits, by caKey.
	rateLimits map[string]RateLimits
	// checkTimeout and checkStep are Check's (WithCheckTimeout,
	// WithCheckProgress).
	checkTimeout time.Duration
	checkStep    func(CheckStep)
	// scrubbers shares a Scrubber among the certificates with the same
	// secrets; set by New.
	scrubbers *redact.Pool
}

// givenAccount is the ACME account of the main block as the caller made
// it with GetLegoConfig.
type givenAccount struct {
	user    *User
	legoCfg *lego.Config
}

func defaultSettings() settings {
	return settings{
		logger: zerolog.New(os.Stderr).Level(zerolog.InfoLevel).With().Timestamp().Logger(),
		clock:  systemClock{},
	}
}

// Option configures a Provider.
type Option func(*settings)

// WithLogger sets the logger. The default writes JSON at Info level to
// standard error. The global zerolog logger is never changed. A storage
// that New opens from the config's storage block logs through it too.
func WithLogger(l zerolog.Logger) Option { return func(s *settings) { s.logger = l } }

// WithStorage sets where certificates, keys and records are kept, in place
// of the config's storage block. The default is the storage the block
// names, or a FileStorage using the paths of the config when there is
// none. The caller keeps ownership of st: Provider.Close does not close
// it. With New, the ACME account keys are kept in st too; with
// NewProvider, the main block's account key is the one GetLegoConfig read.
func WithStorage(st Storage) Option { return func(s *settings) { s.storage = st } }

// WithClock sets the clock, for tests that drive time.
func WithClock(c Clock) Option { return func(s *settings) { s.clock = c } }

// WithRateLimits sets the rate limits that orders to the CA whose
// directory is caDirURL are paced under, in place of the defaults; a zero
// RateLimits turns pacing off for that CA. The defaults are the limits Let's
// Encrypt publishes, for its production and staging directories, and none
// for other CAs.
//
// Before a certificate is ordered, at start-up (ObtainAll), on renewal or
// when forced, the order takes its place under each limit of its CA: the
// orders of its account, the certificates of each of its registered
// domains (a renewal of the same names excepted), the failed validations of
// each of its names. An order with no room waits for its turn: at start-up
// ObtainAll returns an error wrapping ErrPaced for it and the scheduler
// orders it when its turn comes; a scheduled renewal waits in the
// scheduler; a forced renewal waits in RenewAll. RenewalStatus tells each
// certificate waiting, with the Reason "rate_limit", the limit, and when
// its turn comes. At most four orders of a Provider run at once, whatever
// the limits.
func WithRateLimits(caDirURL string, limits RateLimits) Option {
	return func(s *settings) {
		if s.rateLimits == nil {
			s.rateLimits = make(map[string]RateLimits)
		}
		s.rateLimits[caKey(caDirURL)] = limits
	}
}

// withAccount gives New the main block's account, as NewProvider does.
func withAccount(user *User, legoCfg *lego.Config) Option {
	return func(s *settings) { s.account = &givenAccount{user, legoCfg} }
}
