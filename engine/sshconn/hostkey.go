package sshconn

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeyChecker verifies host keys against a known_hosts file under a HostKeyPolicy.
type hostKeyChecker struct {
	name   string // inventory name, for errors
	file   string
	policy HostKeyPolicy
	hashed bool
}

// load reads the file; a file that does not exist is an empty database.
func (h *hostKeyChecker) load() (ssh.HostKeyCallback, error) {
	cb, err := knownhosts.New(h.file)
	if errors.Is(err, os.ErrNotExist) {
		return func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read known_hosts: %w", h.name, err)
	}
	return cb, nil
}

// algorithms returns the host key algorithms to ask the server for: those of the keys known_hosts
// holds for addr, so that a host with several keys is checked against the one recorded (and not
// reported as changed because it offered another type). Nil means "no preference".
func (h *hostKeyChecker) algorithms(cb ssh.HostKeyCallback, addr string) []string {
	if h.policy == Insecure {
		return nil
	}
	probe, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if err := cb(addr, probeAddr, probe); !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil
	}
	var algs []string
	seen := map[string]bool{}
	add := func(a ...string) {
		for _, s := range a {
			if !seen[s] {
				seen[s] = true
				algs = append(algs, s)
			}
		}
	}
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	return algs
}

var probeAddr = &net.TCPAddr{IP: net.IPv4zero}

// hostKeyFailure keeps the typed error a host key callback returned, because the ssh package
// flattens it into its handshake error.
type hostKeyFailure struct {
	mu  sync.Mutex
	err error
}

func (f *hostKeyFailure) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// callback returns the ssh.HostKeyCallback for one connection attempt; its error, if any, is also
// stored in failure.
func (h *hostKeyChecker) callback(cb ssh.HostKeyCallback, failure *hostKeyFailure) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		if h.policy == Insecure {
			return nil
		}
		err := h.check(cb, hostname, remote, key)
		if err != nil {
			failure.mu.Lock()
			failure.err = err
			failure.mu.Unlock()
		}
		return err
	}
}

func (h *hostKeyChecker) check(cb ssh.HostKeyCallback, hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := cb(hostname, remote, key)
	if err == nil {
		return nil
	}
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &ke) && len(ke.Want) > 0:
		return h.changed(hostname, key, ke)
	case errors.As(err, &ke):
		if h.policy == AcceptNew {
			return h.record(hostname, remote, key)
		}
		return &UnknownHostKeyError{
			Host: h.name, Addr: hostname, KeyType: key.Type(), Fingerprint: ssh.FingerprintSHA256(key),
			KnownHosts: h.file, Line: knownhosts.Line([]string{hostname}, key),
		}
	case errors.As(err, &re):
		return fmt.Errorf("%s (%s): host key %s %s is revoked in %s:%d; refusing to connect",
			h.name, hostname, key.Type(), ssh.FingerprintSHA256(key), re.Revoked.Filename, re.Revoked.Line)
	}
	return fmt.Errorf("%s (%s): check host key: %w", h.name, hostname, err)
}

func (h *hostKeyChecker) changed(hostname string, key ssh.PublicKey, ke *knownhosts.KeyError) error {
	e := &HostKeyChangedError{Host: h.name, Addr: hostname, KeyType: key.Type(), Fingerprint: ssh.FingerprintSHA256(key)}
	for _, k := range ke.Want {
		e.Expected = append(e.Expected, KnownKey{
			KeyType: k.Key.Type(), Fingerprint: ssh.FingerprintSHA256(k.Key), File: k.Filename, Line: k.Line,
		})
	}
	return e
}

// record appends the key of a host known_hosts does not list (AcceptNew). It holds an exclusive
// lock on the file and checks again under it, so concurrent dials of many hosts (from this process
// or others) neither lose lines nor record a host twice.
func (h *hostKeyChecker) record(hostname string, remote net.Addr, key ssh.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(h.file), 0o700); err != nil {
		return fmt.Errorf("%s: record host key: %w", h.name, err)
	}
	f, err := os.OpenFile(h.file, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%s: record host key: %w", h.name, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("%s: lock %s: %w", h.name, h.file, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing unlocks too

	// Another dial may have recorded this host meanwhile.
	cb, err := h.load()
	if err != nil {
		return err
	}
	var ke *knownhosts.KeyError
	switch err := cb(hostname, remote, key); {
	case err == nil:
		return nil
	case errors.As(err, &ke) && len(ke.Want) > 0:
		return h.changed(hostname, key, ke)
	case !errors.As(err, &ke):
		return fmt.Errorf("%s (%s): check host key: %w", h.name, hostname, err)
	}

	host := knownhosts.Normalize(hostname)
	if h.hashed {
		host = knownhosts.HashHostname(host)
	}
	line := knownhosts.Line([]string{host}, key) + "\n"
	if needsNewline(f) {
		line = "\n" + line
	}
	if _, err := f.WriteString(line); err != nil {
		return fmt.Errorf("%s: record host key in %s: %w", h.name, h.file, err)
	}
	return nil
}

// needsNewline reports whether the file is not empty and does not end with a newline.
func needsNewline(f *os.File) bool {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return false
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, st.Size()-1); err != nil && err != io.EOF {
		return false
	}
	return b[0] != '\n'
}
