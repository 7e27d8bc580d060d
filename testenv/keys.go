package testenv

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
)

// ensureKey returns the public key of the ed25519 private key at path, generating the key (and
// path.pub) when the file does not exist yet. comment ends the .pub line.
func ensureKey(path, comment string) (ssh.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		signer, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("parse key %s: %w", path, err)
		}
		return signer.PublicKey(), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read key: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	if err := writeFileAtomic(path+".pub", []byte(authorizedLine(sshPub, comment)), 0o644); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	return sshPub, nil
}

// authorizedLine formats a public key as one authorized_keys (or .pub) line.
func authorizedLine(k ssh.PublicKey, comment string) string {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	if comment != "" {
		line += " " + comment
	}
	return line + "\n"
}

// knownHostsLine formats one known_hosts line for a host key, keyed by address (port 22).
func knownHostsLine(address string, k ssh.PublicKey) string {
	return address + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + "\n"
}
