package autocert

import (
	"context"
	"time"
)

// Storage holds everything autocert persists: ACME account keys,
// certificates and their keys, last-failure records and chosen renewal
// times. Keys are slash-separated names; the default FileStorage uses them
// as file paths, exactly those of the configuration (cert_path, key_path,
// acme_key_path), so existing installations keep their layout.
//
// Implementations must be safe for concurrent use.
type Storage interface {
	// Load returns the value stored under key. A missing key is an error
	// wrapping fs.ErrNotExist.
	Load(ctx context.Context, key string) ([]byte, error)

	// Store writes every entry as one atomic unit: a Load that follows, in
	// this process or another, also after a crash at any point, sees either
	// all the new values or all the previous ones, never a mix and never a
	// torn value. A certificate and its key are stored in one call.
	Store(ctx context.Context, entries ...Entry) error

	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error

	// Stat reports the size and modification time of key, or an error
	// wrapping fs.ErrNotExist.
	Stat(ctx context.Context, key string) (KeyInfo, error)

	// Lock blocks until it holds the lock called name, or ctx ends. While
	// held, no other holder of the same Storage (in this process or
	// another sharing it) holds it. A lock whose holder dies is released.
	// The returned function releases it.
	Lock(ctx context.Context, name string) (unlock func(), err error)
}

// Entry is one value to store.
type Entry struct {
	Key   string
	Value []byte
	// Private marks secrets (private keys): a file is created with mode
	// 0600 instead of 0644.
	Private bool
}

// KeyInfo describes a stored value.
type KeyInfo struct {
	Size     int64
	Modified time.Time
}
