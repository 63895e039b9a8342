// Package autocert keeps TLS certificates issued and renewed through ACME
// (Let's Encrypt and any RFC 8555 CA) with the DNS-01 challenge, and picks
// the certificate of each TLS handshake by SNI.
//
// A server loads a Config (LoadConfig), builds a Provider (GetLegoConfig,
// then NewProvider), sets tls.Config.GetCertificate to Provider.GetCert,
// calls ObtainCertIfNotExistsAll at start-up and ScheduleRenewalAll once.
// From then on every certificate of the config (the main block and each
// extra) is obtained when missing, stored, renewed in the window its CA
// suggests (ACME Renewal Information) or when a third of its lifetime is
// left, and served at the next handshake; GetCert neither locks nor
// allocates.
//
// State is kept in a Storage: by default the files the config names
// (FileStorage), shared safely by processes on one host; storage/postgres
// shares it between hosts. DNS providers are registered by name
// (dnsproviders); acmetest runs a real ACME CA and DNS server in a test
// process; cmd/autocert is the command for servers that read certificate
// files.
package autocert
