package sshconn

import (
	"testing"
	"time"

	"github.com/runbook/runbook/engine/sshconn/sshdtest"
)

// sshd is a real OpenSSH server on loopback (see sshdtest), with the client configuration that
// reaches it.
type sshd struct{ *sshdtest.Server }

// startSSHD starts sshd; it skips the test when sshd is not installed.
func startSSHD(t testing.TB, o sshdtest.Options) sshd { return sshd{sshdtest.Start(t, o)} }

// config returns a Config that connects to this server with its authorized key.
func (s sshd) config(name, knownHosts string) Config {
	return Config{
		Name: name, Address: s.Listen[0], Port: s.Port, User: s.User,
		PrivateKeys: []string{s.Client.File}, KnownHosts: knownHosts,
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
