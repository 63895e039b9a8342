// Package clouddns registers the Google Cloud DNS provider with autocert
// under the names "clouddns" and "gcloud" (lego's name). It links Google's
// API client libraries (about 11 MB); import it only when a certificate
// uses Cloud DNS:
//
//	import _ "github.com/autocert-dev/autocert/dnsproviders/clouddns"
//
// Credentials are a service account key, given as its JSON text
// (service_account, alias GCE_SERVICE_ACCOUNT) or as the path of its file
// (service_account_file, alias GCE_SERVICE_ACCOUNT_FILE); without either,
// Google's application default credentials are used and project is
// required. The other options are the snake_case fields of lego's
// gcloud.Config: project (default: the project of the service account),
// zone_id, allow_private_zone, impersonate_service_account, debug, ttl,
// propagation_timeout, polling_interval.
//
// The key is checked when the config is validated; the provider itself is
// built on first use, as finding application default credentials may ask
// the cloud's metadata server.
package clouddns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/dnsproviders/legodns"
	"github.com/go-acme/lego/v4/providers/dns/gcloud"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	gdns "google.golang.org/api/dns/v1"
	"google.golang.org/api/impersonate"
	"google.golang.org/api/option"
)

// Names this package registers: the seed's name and lego's.
const (
	Name      = "clouddns"
	LegoName  = "gcloud"
	optSA     = "service_account"
	optSAFile = "service_account_file"
)

func init() {
	f := legodns.New(gcloud.NewDefaultConfig, gcloud.NewDNSProviderConfig,
		legodns.Lazy(),
		legodns.Hide("HTTPClient"),
		legodns.Alias("project", "GCE_PROJECT"),
		legodns.ExtraKeys(
			autocert.OptionKey{Name: optSA, Aliases: []string{"GCE_SERVICE_ACCOUNT"}},
			autocert.OptionKey{Name: optSAFile, Aliases: []string{"GCE_SERVICE_ACCOUNT_FILE"}},
		),
		legodns.RequireOneOf("project", optSA, optSAFile))
	f.WithCheck(func(extra map[string]string) error {
		_, err := serviceAccount(extra)
		return err
	})
	f.WithPrepare(prepare)
	autocert.RegisterProvider(Name, f)
	autocert.RegisterProvider(LegoName, f)
}

// requestTimeout bounds each request to Google's APIs.
const requestTimeout = 30 * time.Second

// serviceAccount returns the service account key the options give, nil
// when they give none. Errors name the key, never its content.
func serviceAccount(extra map[string]string) (*google.Credentials, error) {
	key, hasKey := extra[optSA]
	file, hasFile := extra[optSAFile]
	var data []byte
	switch {
	case hasKey && hasFile:
		return nil, fmt.Errorf("options %q and %q: give one of them", optSA, optSAFile)
	case hasKey:
		data = []byte(key)
	case hasFile:
		var err error
		if data, err = os.ReadFile(file); err != nil {
			return nil, fmt.Errorf("option %q: %w", optSAFile, errors.Unwrap(err))
		}
	default:
		return nil, nil
	}
	creds, err := google.CredentialsFromJSONWithType(context.Background(), data, google.ServiceAccount, gdns.NdevClouddnsReadwriteScope)
	if err != nil {
		which := optSA
		if hasFile {
			which = optSAFile
		}
		return nil, fmt.Errorf("option %q: not a Google service account key in JSON", which)
	}
	return creds, nil
}

// prepare gives the Config its authenticated HTTP client.
func prepare(cfg *gcloud.Config, extra map[string]string) error {
	ctx := context.Background()
	creds, err := serviceAccount(extra)
	if err != nil {
		return err
	}
	if creds == nil {
		if cfg.Project == "" {
			return errors.New(`option "project" is required without a service account key`)
		}
		if creds, err = google.FindDefaultCredentials(ctx, gdns.NdevClouddnsReadwriteScope); err != nil {
			return fmt.Errorf("clouddns: application default credentials: %w", err)
		}
	}
	if cfg.Project == "" {
		cfg.Project = creds.ProjectID
	}
	if cfg.Project == "" {
		return errors.New(`clouddns: the service account key names no project: set option "project"`)
	}
	ts := creds.TokenSource
	if cfg.ImpersonateServiceAccount != "" {
		ts, err = impersonate.CredentialsTokenSource(ctx, impersonate.CredentialsConfig{
			TargetPrincipal: cfg.ImpersonateServiceAccount,
			Scopes:          []string{gdns.NdevClouddnsReadwriteScope},
		}, option.WithCredentials(creds))
		if err != nil {
			return fmt.Errorf("clouddns: impersonating a service account: %w", err)
		}
	}
	client := oauth2.NewClient(ctx, ts)
	client.Timeout = requestTimeout
	cfg.HTTPClient = client
	return nil
}
