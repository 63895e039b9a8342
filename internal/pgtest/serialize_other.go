//go:build !unix

package pgtest

// Serialize does nothing where there are no OS file locks.
func Serialize() {}
