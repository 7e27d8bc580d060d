package sshconn

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// keyring is the set of keys offered to a host, loaded once per Client and reused on reconnects.
type keyring struct {
	signers []ssh.Signer
	descs   []string // one per signer, for AuthError
	agent   net.Conn // nil without an agent
}

// loadKeys reads cfg.PrivateKeys and, when agentSock is set, the agent's keys. Without either it
// falls back to the usual default key files.
func loadKeys(cfg *Config, agentSock string) (*keyring, error) {
	kr := &keyring{}
	var agentKeys []*agent.Key
	var agentSigners []ssh.Signer
	if agentSock != "" {
		// An agent that cannot be reached is ignored, as ssh(1) does.
		if conn, err := net.Dial("unix", agentSock); err == nil {
			ac := agent.NewClient(conn)
			keys, lerr := ac.List()
			signers, serr := ac.Signers() // in List order
			if lerr == nil && serr == nil && len(keys) == len(signers) && len(keys) > 0 {
				kr.agent = conn
				agentKeys, agentSigners = keys, signers
			} else {
				conn.Close()
			}
		}
	}

	files := cfg.PrivateKeys
	explicit := len(files) > 0
	if !explicit && len(agentKeys) == 0 {
		if home, err := os.UserHomeDir(); err == nil {
			for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
				files = append(files, filepath.Join(home, ".ssh", n))
			}
		}
	}
	for _, file := range files {
		pem, err := os.ReadFile(file)
		if err != nil {
			if !explicit && errors.Is(err, os.ErrNotExist) {
				continue
			}
			kr.close()
			return nil, fmt.Errorf("%s: read private key: %w", cfg.Name, err)
		}
		signer, err := ssh.ParsePrivateKey(pem)
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			if inAgent(agentKeys, pm.PublicKey) {
				continue // the agent offers it
			}
			kr.close()
			return nil, fmt.Errorf("%s: private key %s is encrypted: load it into ssh-agent", cfg.Name, file)
		}
		if err != nil {
			kr.close()
			return nil, fmt.Errorf("%s: parse private key %s: %w", cfg.Name, file, err)
		}
		kr.signers = append(kr.signers, signer)
		kr.descs = append(kr.descs, describe(file, signer.PublicKey()))
	}
	// File keys first: sshd counts every key offered against MaxAuthTries, and the configured key
	// is the likely one.
	kr.signers = append(kr.signers, agentSigners...)
	for _, k := range agentKeys {
		kr.descs = append(kr.descs, describe("agent: "+k.Comment, k))
	}
	return kr, nil
}

// describe returns "label (type SHA256:...)".
func describe(label string, key ssh.PublicKey) string {
	return fmt.Sprintf("%s (%s %s)", label, key.Type(), ssh.FingerprintSHA256(key))
}

func inAgent(keys []*agent.Key, pub ssh.PublicKey) bool {
	if pub == nil {
		return false
	}
	for _, k := range keys {
		if bytes.Equal(k.Marshal(), pub.Marshal()) {
			return true
		}
	}
	return false
}

func (k *keyring) close() {
	if k.agent != nil {
		k.agent.Close()
	}
}
