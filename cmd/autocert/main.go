// Command autocert keeps TLS certificates issued and renewed through ACME
// with the DNS-01 challenge, writing them to files for servers such as
// nginx, HAProxy or Postfix, and runs a demo on an embedded test CA.
//
// Usage:
//
//	autocert [-config autocert.yml] [-log-level info] [-log-format console|json] <command> [flags]
//
// Commands:
//
//	run        obtain what is missing, then keep renewing until SIGINT or SIGTERM;
//	           run the deploy hook after each new certificate; serve the HTTP API
//	obtain     obtain the certificates that are missing, expired or no longer match
//	           (--force: also while waiting after a recorded failure)
//	renew      renew the certificates that are due; --force: all of them, now
//	status     show the certificates and their renewal state, from the files alone
//	           (--json for the JSON of the API)
//	check      the pre-flight check: reach each CA directory, look up the account
//	           without creating one, check the profile, and for each certificate
//	           write a test TXT record, wait until the resolvers see it, remove it;
//	           no order is sent (--json, --timeout)
//	providers  list the DNS provider names; with a name, its option keys
//	demo       obtain and serve certificates from a CA and DNS server started in
//	           this process: no domain, account or internet needed (--serve: keep
//	           serving)
//
// The config file is the library's (see the README), with an optional
// "command" section next to the "autocert" block for the deploy hook, the
// HTTP API and webhook notifications. Exit status: 0 on success, 1 when an
// operation failed, 2 for bad usage or a bad config.
package main

import (
	"os"
)

func main() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}
