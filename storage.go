package autocert

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/autocert-dev/autocert/internal/redact"
	"github.com/autocert-dev/autocert/internal/suggest"
)

// Storage holds everything autocert persists: ACME account keys,
// certificates and their keys, last-failure records and chosen renewal
// times. Keys are slash-separated names; the default FileStorage uses them
// as file paths, exactly those of the configuration (cert_path, key_path,
// acme_key_path), so existing installations keep their layout.
//
// Implementations must be safe for concurrent use.
type Storage interface {
	// Load returns the value stored under key, in a slice the caller
	// owns. A missing key is an error wrapping fs.ErrNotExist.
	Load(ctx context.Context, key string) ([]byte, error)

	// Store writes every entry as one atomic unit: a Load that follows, in
	// this process or another, also after a crash at any point, sees either
	// all the new values or all the previous ones, never a mix and never a
	// torn value. A certificate and its key are stored in one call. The
	// keys of one call are distinct; Store without entries does nothing.
	// A Store that fails has stored nothing or, when the outcome of an
	// interrupted commit is unknown, everything. Store does not keep the
	// entries' slices after it returns.
	Store(ctx context.Context, entries ...Entry) error

	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error

	// Stat reports the size and modification time of key, or an error
	// wrapping fs.ErrNotExist.
	Stat(ctx context.Context, key string) (KeyInfo, error)

	// Lock blocks until it holds the lock called name, or ctx ends (then
	// it returns an error wrapping ctx.Err()). While held, no other holder
	// of the same Storage (in this process or another sharing it) holds
	// it; a lock is not reentrant, even within one goroutine. Lock names
	// are keys: the Provider locks the key of a certificate while it
	// obtains it. ctx bounds only the wait: the lock stays held until the
	// returned function is called (calling it again does nothing).
	//
	// A lock whose holder dies is released: at once when its process
	// ends, and for a shared store also when the holder's host or network
	// fails, after a delay its implementation documents. A lock serves to
	// avoid duplicate work (two ACME orders for one certificate), not to
	// guard the data: a holder whose lock was released under it (a store
	// restarted, a network partition) is not told, and may still Store;
	// Store being atomic, the data stays whole, the last Store winning.
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

// Watcher is implemented by a Storage shared by several instances that can
// tell when a value changes, so that a certificate renewed by one instance
// is served by the others at once.
type Watcher interface {
	// Watch calls changed with the key of every value stored or deleted,
	// by any instance (this one included), until ctx ends; then it returns
	// ctx.Err(). The calls are made one at a time from the goroutine
	// running Watch. A change is reported after it is visible to Load;
	// changes made before Watch is listening are not reported.
	//
	// Watch keeps trying to reconnect after a lost connection; changes
	// made while it was disconnected are not reported one by one: once
	// connected again it calls changed with the empty key, meaning that
	// any value may have changed. As a safety net against failures it
	// cannot see, callers also re-read periodically.
	Watch(ctx context.Context, changed func(key string)) error
}

// StorageConfig is the storage block of a configuration: where state is
// kept when it is not the file layout. It is read from the main block
// only; every certificate of a Provider shares one Storage.
type StorageConfig struct {
	// Type is "file" (the default, FileStorage) or a name registered with
	// RegisterStorage, such as "postgres".
	Type string `json:"type,omitempty" yaml:"type,omitempty"`
	// DSN is the address and credentials of the store, such as
	// "postgres://user:password@host/db". It is a secret: never printed.
	DSN Redacted `json:"dsn,omitempty" yaml:"dsn,omitempty"`
}

// StorageTypeFile is the StorageConfig.Type of FileStorage.
const StorageTypeFile = "file"

// StorageFactory opens the Storage a StorageConfig describes. A Storage it
// returns may implement io.Closer; Provider.Close closes it. When New opens
// it, ctx carries the Provider's logger, for zerolog.Ctx: a storage that
// logs (lost connections, say) should log there.
type StorageFactory func(ctx context.Context, cfg StorageConfig) (Storage, error)

// storageRegistry maps storage types to factories, filled from init
// functions of storage packages, like DNS providers.
var storageRegistry namedRegistry[StorageFactory]

// RegisterStorage makes a storage type available to the storage block of a
// Config. It panics if name is empty, "file" or already registered.
func RegisterStorage(name string, f StorageFactory) {
	if name == "" || name == StorageTypeFile || f == nil {
		panic(fmt.Sprintf("autocert: RegisterStorage: invalid name %q or nil factory", name))
	}
	storageRegistry.add("RegisterStorage", name, f)
}

// storageTypes returns the sorted registered storage types, "file" first.
func storageTypes() []string {
	return append([]string{StorageTypeFile}, storageRegistry.names()...)
}

// OpenStorage opens a new Storage of the config's storage block: a
// FileStorage when there is none. The caller owns what it returns: close
// it when it implements io.Closer. (New opens the storage itself, and
// the Provider's Close closes it; see Provider.Close.)
//
// Errors never show the DSN or its password.
func (cfg *Config) OpenStorage(ctx context.Context) (Storage, error) { return cfg.openStorage(ctx) }

// openStorage is OpenStorage. The storage factory finds the Provider's
// logger in ctx (zerolog.Ctx), when New opens it.
func (cfg *Config) openStorage(ctx context.Context) (Storage, error) {
	if !cfg.sharedStorage() {
		return &FileStorage{}, nil
	}
	typ := strings.ToLower(strings.TrimSpace(cfg.Storage.Type))
	f, ok := storageRegistry.lookup(typ)
	if !ok {
		return nil, &FieldError{Path: "storage.type", Msg: unknownStorageType(typ)}
	}
	st, err := f(ctx, *cfg.Storage)
	if err != nil {
		return nil, dsnScrubber(cfg.Storage.DSN.Value()).Error(fmt.Errorf("storage %s: %w", typ, err))
	}
	return st, nil
}

// sharedStorage reports whether the config names a storage other than the
// file layout.
func (cfg *Config) sharedStorage() bool {
	if cfg.Storage == nil {
		return false
	}
	typ := strings.ToLower(strings.TrimSpace(cfg.Storage.Type))
	return typ != "" && typ != StorageTypeFile
}

// storageImportPath returns the import path of the package of this module
// that registers the storage type typ, or "" when there is none.
func storageImportPath(typ string) string {
	switch typ {
	case "postgres":
		return "github.com/autocert-dev/autocert/storage/postgres"
	}
	return ""
}

// unknownStorageType explains that typ is not a registered storage type:
// which package to import when it is one of this module's, else the
// nearest known type, else the known types.
func unknownStorageType(typ string) string {
	known := storageTypes()
	if path := storageImportPath(typ); path != "" {
		return fmt.Sprintf("storage type %q is not registered: a storage package must be imported to register its type; "+
			"add import _ %q to the program", typ, path)
	}
	candidates := known
	for _, t := range []string{"postgres"} {
		if !slices.Contains(candidates, t) {
			candidates = append(slices.Clip(candidates), t)
		}
	}
	if s := suggest.Nearest(typ, candidates); s != "" {
		msg := fmt.Sprintf("unknown storage type %q (did you mean %s?)", typ, s)
		if path := storageImportPath(s); path != "" && !slices.Contains(known, s) {
			msg += fmt.Sprintf("; a storage package must be imported to register its type: import _ %q", path)
		}
		return msg
	}
	return fmt.Sprintf("unknown storage type %q (known: %s; a storage package must be imported to register its type)",
		typ, strings.Join(known, ", "))
}

// dsnScrubber removes a DSN, and the password it holds (in its escaped and
// encoded forms too), from messages: a storage package's error may quote
// either.
func dsnScrubber(dsn string) *redact.Scrubber { return redact.New(redact.DSNSecrets(dsn)...) }
