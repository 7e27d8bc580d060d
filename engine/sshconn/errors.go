package sshconn

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/runbook/runbook/engine"
)

// ErrClosed is returned by a Client that was closed.
var ErrClosed = errors.New("connection closed")

// ErrSecretInCommand is returned by Exec for a command line that contains a registered secret. The
// error never includes the command line.
var ErrSecretInCommand = errors.New("refusing to run a command line that contains a secret (pass secrets on stdin)")

// UnreachableError reports that the TCP connection to the host (or, through a jump host, the
// forwarded connection) could not be made: refused, timed out, no route, unknown name.
type UnreachableError struct {
	// Host is the inventory name.
	Host string
	// Addr is the host:port that was dialled.
	Addr string
	// Via is the name of the jump host the connection went through, if any.
	Via string
	// Reason is a short description: "connection refused", "timed out after 10s".
	Reason string
	// Err is the underlying error.
	Err error
}

// Error returns a one-line message naming the host, address and reason.
func (e *UnreachableError) Error() string {
	via := ""
	if e.Via != "" {
		via = " via " + e.Via
	}
	return fmt.Sprintf("%s (%s)%s: %s; check the host's address in the inventory and that the host and its sshd are up", e.Host, e.Addr, via, e.Reason)
}

// Unwrap returns the underlying error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// UnreachableHost returns the host's inventory name (engine.UnreachableError).
func (e *UnreachableError) UnreachableHost() string { return e.Host }

var _ engine.UnreachableError = (*UnreachableError)(nil)

// AuthError reports that the host refused every key that was offered.
type AuthError struct {
	// Host is the inventory name.
	Host string
	// Addr is the host:port that was dialled.
	Addr string
	// User is the remote user.
	User string
	// Keys describes the keys that were offered: "/path/id_ed25519 (ssh-ed25519 SHA256:...)",
	// "agent: comment (ssh-ed25519 SHA256:...)".
	Keys []string
	// Err is the underlying error.
	Err error
}

// Error returns a one-line message naming the host, user and keys tried.
func (e *AuthError) Error() string {
	keys := "no keys"
	if len(e.Keys) > 0 {
		keys = "tried " + strings.Join(e.Keys, ", ")
	}
	return fmt.Sprintf("%s (%s): authentication failed for user %s (%s); is the key in that user's authorized_keys on the host, and is the user right?", e.Host, e.Addr, e.User, keys)
}

// Unwrap returns the underlying error.
func (e *AuthError) Unwrap() error { return e.Err }

// UnknownHostKeyError reports, under the Strict policy, a host whose key is not in known_hosts.
type UnknownHostKeyError struct {
	// Host is the inventory name.
	Host string
	// Addr is the host:port that was dialled.
	Addr string
	// KeyType is the offered key's algorithm, e.g. "ssh-ed25519".
	KeyType string
	// Fingerprint is the offered key's SHA256 fingerprint ("SHA256:...").
	Fingerprint string
	// KnownHosts is the known_hosts file that was consulted.
	KnownHosts string
	// Line is the known_hosts line that would record the offered key.
	Line string
}

// Error returns a one-line message naming the host and the offered key's fingerprint, and
// saying how to accept it.
func (e *UnknownHostKeyError) Error() string {
	return fmt.Sprintf("%s (%s): unknown host key %s %s (not in %s); verify the fingerprint, then add the key to that file or connect once with host key policy accept-new",
		e.Host, e.Addr, e.KeyType, e.Fingerprint, e.KnownHosts)
}

// KnownKey is a host key recorded in a known_hosts file.
type KnownKey struct {
	// KeyType is the key's algorithm, e.g. "ssh-ed25519".
	KeyType string
	// Fingerprint is the key's SHA256 fingerprint ("SHA256:...").
	Fingerprint string
	// File and Line locate the record.
	File string
	Line int
}

// String returns "type fingerprint (file:line)".
func (k KnownKey) String() string {
	return fmt.Sprintf("%s %s (%s:%d)", k.KeyType, k.Fingerprint, k.File, k.Line)
}

// HostKeyChangedError reports that the host offered a key different from the one recorded in
// known_hosts. The connection is never made.
type HostKeyChangedError struct {
	// Host is the inventory name.
	Host string
	// Addr is the host:port that was dialled.
	Addr string
	// KeyType and Fingerprint describe the key the host offered.
	KeyType     string
	Fingerprint string
	// Expected are the keys known_hosts holds for the host.
	Expected []KnownKey
}

// Error returns a one-line message naming the host, the offered key and the expected ones with
// their known_hosts lines.
func (e *HostKeyChangedError) Error() string {
	want := make([]string, len(e.Expected))
	for i, k := range e.Expected {
		want[i] = k.String()
	}
	return fmt.Sprintf("%s (%s): HOST KEY CHANGED: offered %s %s, expected %s; refusing to connect (if the host was reinstalled, remove the old line)",
		e.Host, e.Addr, e.KeyType, e.Fingerprint, strings.Join(want, " or "))
}

// LostError reports that the connection to a host ended under a command, or ended between
// commands and could not be made again.
type LostError struct {
	// Host is the inventory name.
	Host string
	// Cause is why the connection ended (EOF, keepalive timeout, ...).
	Cause error
	// Running is true when the connection ended while the command ran: it may or may not have
	// completed, and it was not run again.
	Running bool
	// Reconnect is the error of the attempt to connect again, if one was made.
	Reconnect error
}

// Error returns a one-line message naming the host, what happened to the command and why.
func (e *LostError) Error() string {
	var b strings.Builder
	b.WriteString(e.Host)
	b.WriteString(": connection lost")
	if e.Running {
		b.WriteString(" while the command was running (it may or may not have completed)")
	}
	switch {
	case errors.Is(e.Cause, io.EOF):
		b.WriteString(": closed by the host")
	case e.Cause != nil:
		fmt.Fprintf(&b, ": %v", e.Cause)
	}
	if e.Reconnect != nil {
		fmt.Fprintf(&b, "; reconnecting failed: %v", e.Reconnect)
	}
	return b.String()
}

// Unwrap returns the cause and the reconnect error, so errors.As finds, for example, the
// UnreachableError of a host that did not come back.
func (e *LostError) Unwrap() []error {
	var errs []error
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	if e.Reconnect != nil {
		errs = append(errs, e.Reconnect)
	}
	return errs
}
