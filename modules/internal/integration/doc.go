// Package integration holds the tests that run the general-purpose modules against a real host: a
// real sshd on loopback with a temporary configuration, reached through engine/sshconn.
package integration
