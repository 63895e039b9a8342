package autocert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/lego"
	"github.com/rs/zerolog"
)

// Limits on reading an ACME directory for its meta object.
const (
	directoryTimeout     = 30 * time.Second
	maxDirectorySize     = 1 << 20
	maxProfilesLogged    = 50  // profiles listed in a warning
	maxProfileDescLogged = 200 // bytes of each description in a warning
)

// directoryMeta is what autocert reads of the meta object of an ACME
// directory (RFC 8555, section 7.1.1).
type directoryMeta struct {
	// Profiles are the certificate profiles the CA offers, name to
	// description (ACME profiles extension); none when the CA does not
	// implement the extension.
	Profiles map[string]string `json:"profiles"`
	// ExternalAccountRequired says that a new account needs External
	// Account Binding.
	ExternalAccountRequired bool `json:"externalAccountRequired"`
}

// fetchDirectoryMeta reads the meta object of the ACME directory at url
// with hc (the HTTP client the CA's lego client uses: same roots, proxy
// and User-Agent), giving up when ctx ends.
func fetchDirectoryMeta(ctx context.Context, hc *http.Client, url string) (directoryMeta, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return directoryMeta{}, fmt.Errorf("ACME directory %s: %w", url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return directoryMeta{}, fmt.Errorf("ACME directory %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return directoryMeta{}, fmt.Errorf("ACME directory %s: HTTP status %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDirectorySize+1))
	if err != nil {
		return directoryMeta{}, fmt.Errorf("ACME directory %s: %w", url, err)
	}
	if len(body) > maxDirectorySize {
		return directoryMeta{}, fmt.Errorf("ACME directory %s: larger than the limit of %d KiB", url, maxDirectorySize>>10)
	}
	var dir struct {
		Meta directoryMeta `json:"meta"`
	}
	if err := json.Unmarshal(body, &dir); err != nil {
		return directoryMeta{}, fmt.Errorf("ACME directory %s: not a JSON directory: %w", url, err)
	}
	return dir.Meta, nil
}

// profileVerdict says how a CA's directory answers a configured profile.
type profileVerdict int

const (
	profileOffered    profileVerdict = iota // the CA offers it (or none is asked)
	profileNotOffered                       // the CA offers others
	profileNoneOffer                        // the CA offers no profiles at all
)

// checkProfile compares the profile asked ("" for none) with the profiles
// a CA offers.
func checkProfile(profile string, offered map[string]string) profileVerdict {
	switch {
	case profile == "":
		return profileOffered
	case len(offered) == 0:
		return profileNoneOffer
	}
	if _, ok := offered[profile]; !ok {
		return profileNotOffered
	}
	return profileOffered
}

// profileRequest is a profile that some certificates of a Provider ask of
// one CA, with the names of those certificates ("main", "extra[0]"...).
type profileRequest struct {
	profile string
	certs   []string
}

// profileRequests returns the profiles that the ACME certificates among cs
// ask for (of the CA of account a, when they have issuers), in the order
// they are first asked, each with the certificates asking it.
func profileRequests(cs []*certificate, a *account) []profileRequest {
	var out []profileRequest
	for _, q := range cs {
		profile := q.cfg.Profile
		for _, is := range q.issuers {
			if is.acct == a {
				profile = is.cfg.Profile
			}
		}
		if profile == "" || !isACME(q.cfg.Provider) {
			continue
		}
		i := slices.IndexFunc(out, func(r profileRequest) bool { return r.profile == profile })
		if i < 0 {
			out = append(out, profileRequest{profile: profile})
			i = len(out) - 1
		}
		out[i].certs = append(out[i].certs, q.name)
	}
	return out
}

// offeredDict returns the offered profiles as a log field, sorted by name;
// a CA's long texts are shortened.
func offeredDict(offered map[string]string) *zerolog.Event {
	d := zerolog.Dict()
	for i, name := range slices.Sorted(maps.Keys(offered)) {
		if i == maxProfilesLogged {
			d.Int("more", len(offered)-i)
			break
		}
		d.Str(shorten(name), shorten(offered[name]))
	}
	return d
}

// shorten cuts s to at most maxProfileDescLogged bytes, on a rune
// boundary.
func shorten(s string) string {
	if len(s) <= maxProfileDescLogged {
		return s
	}
	n := maxProfileDescLogged
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// checkDirectory checks the configuration of c against what the CA's
// directory says, once its lego client was made with cfg (whose
// HTTPClient it uses): client calls it holding c.acct.mu, before the
// account is looked up.
//
// A CA that requires External Account Binding, for an account that does
// not exist yet, with no eab_kid configured, is an error naming the
// settings, rather than the CA's refusal of the registration; an account
// that exists is kept as the user's registration.
//
// A profile that the CA does not offer, or any profile when the CA offers
// none, is a warning: the order goes on (a CA may still accept a profile
// its directory does not list), but the user learns why the certificate
// may get the CA's default lifetime. The warning is given once for all
// the certificates of an ACME account, by the first client made for them.
func (c *certificate) checkDirectory(ctx context.Context, cfg *lego.Config, client *lego.Client, is *issuerSlot) error {
	a := is.acct
	if client.GetExternalAccountRequired() && is.cfg.EABKid == "" && a.user.GetRegistration() == nil {
		c.report(StepAccount, "", "looking up the ACME account at "+cfg.CADirURL, 0)
		reg, err := client.Registration.ResolveAccountByKey()
		var prob *acme.ProblemDetails
		switch {
		case err == nil:
			// An existing account needs no binding. The client now
			// signs with the account's URL, so a second lookup on it
			// would fail: keep the registration found.
			a.user.setRegistration(reg)
			c.logger.Info().Str("account", reg.URI).Msg("registration reused")
		case errors.As(err, &prob) && prob.Type == "urn:ietf:params:acme:error:accountDoesNotExist":
			return fmt.Errorf("%w: eab_kid and eab_hmac are required: the CA at %s requires External Account Binding for a new ACME account (externalAccountRequired in its directory); the CA gives the key ID and HMAC key",
				ErrInvalidConfig, cfg.CADirURL)
		}
		// Any other error is reported by the account lookup that
		// follows.
	}

	if a.checked {
		return nil
	}
	a.checked = true
	requests := profileRequests(a.certs, a)
	if len(requests) == 0 {
		return nil
	}
	log := a.logger
	ctx, cancel := context.WithTimeout(ctx, directoryTimeout)
	defer cancel()
	meta, err := fetchDirectoryMeta(ctx, cfg.HTTPClient, cfg.CADirURL)
	if err != nil {
		log.Warn().Str("error", c.scrub(err.Error())).Msg("cannot read the certificate profiles the CA offers; the profile setting is not checked")
		return nil
	}
	for _, r := range requests {
		switch checkProfile(r.profile, meta.Profiles) {
		case profileNotOffered:
			log.Warn().Str("profile", r.profile).Str("ca", cfg.CADirURL).Dict("offered", offeredDict(meta.Profiles)).
				Strs("certificates", r.certs).
				Msg("the CA does not offer this certificate profile (a typo?): it will issue with its default profile or refuse the order; set profile to one offered")
		case profileNoneOffer:
			log.Warn().Str("profile", r.profile).Str("ca", cfg.CADirURL).Strs("certificates", r.certs).
				Msg("the CA offers no certificate profiles: the profile setting has no effect, the CA issues with its default (or refuses the order)")
		}
	}
	return nil
}
