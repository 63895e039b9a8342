// Package autocert keeps TLS certificates issued and renewed through ACME
// (Let's Encrypt and any RFC 8555 CA) with the DNS-01 challenge, and picks
// the certificate of each TLS handshake by SNI.
//
// Before the first obtain, Check tries a Config without ordering: the CA's
// directory, account, profile, and a test TXT record per certificate.
//
// A server loads a Config (LoadConfig), builds a Provider (New, or the
// seed's GetLegoConfig then NewProvider), sets
// tls.Config.GetCertificate to Provider.GetCert, calls ObtainAll (or
// ObtainCertIfNotExistsAll) at start-up and Start (or ScheduleRenewalAll)
// once. From then on every certificate of the config (the main block and
// each extra) is obtained when missing, stored, renewed in the window its
// CA suggests (ACME Renewal Information) or when a third of its lifetime
// is left, and served at the next handshake; GetCert neither locks nor
// allocates. Every call that does I/O takes a context.Context (ObtainAll,
// RenewAll, ForceExpiry, Load, Start, Run, WaitRenewalDone,
// LoadRenewalStatus, GetLegoConfigContext); the seed's names without one
// are wrappers that use context.Background.
//
// Inside, a Provider is the set of its certificates. Each certificate is
// one value that owns its configuration (merged with the main block), its
// ACME account, its keys in storage and the certificate it serves; a
// single scheduler owns what is known of every certificate's renewal
// (failures, renewal windows, the next renewal). Obtaining or reloading a
// certificate returns an outcome, which the scheduler applies and turns
// into events, so the path from "due" to "served" runs one way: scheduler,
// certificate, CA, storage, SNI snapshot, events. Start-up, forced
// renewals, scheduled renewals and reloads of what another process stored
// all take that path. docs/architecture.md walks it file by file.
//
// A certificate may name several CAs (Config.Issuers): an order that
// fails at one for a reason of that CA goes to the next in the same
// attempt; see Issuer for which failures do. The ca key names well-known
// CAs (KnownCAs).
//
// State is kept in a Storage: by default the files the config names
// (FileStorage), shared safely by processes on one host; storage/postgres
// shares it between hosts. DNS providers are registered by name
// (dnsproviders); acmetest runs a real ACME CA and DNS server in a test
// process; cmd/autocert is the command for servers that read certificate
// files.
package autocert
