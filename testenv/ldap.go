package testenv

import (
	"context"

	"github.com/runbook/runbook/testenv/ldapserver"
)

// LDAPInfo says how to reach the lab's directory.
type LDAPInfo struct {
	// URL is the ldap:// URL of the directory.
	URL string `json:"url"`
	// URLS is the ldaps:// URL of the directory.
	URLS string `json:"urls,omitempty"`
	// BindDN is the DN of the directory's administrator.
	BindDN string `json:"bind_dn"`
	// PasswordFile is the absolute path of the file holding the administrator's password.
	PasswordFile string `json:"password_file"`
	// CAFile is the absolute path of the CA certificate that signed the server's certificate.
	CAFile string `json:"ca_file,omitempty"`
}

// LDAPServer prepares and runs the directory on the gluu host. The default implementation is
// the project's ldapserver package; tests may supply another.
type LDAPServer interface {
	// Prepare writes the server's configuration, schema, data and certificates into dir for a
	// server listening on address; it is idempotent.
	Prepare(dir, address string) (LDAPInfo, error)
	// Command returns the argv that runs the server in the foreground.
	Command(dir, address string) []string
	// Ready waits until the server answers.
	Ready(ctx context.Context, info LDAPInfo) error
}

// defaultLDAP is the project's ldapserver package behind LDAPServer.
type defaultLDAP struct{}

func (defaultLDAP) Prepare(dir, address string) (LDAPInfo, error) {
	info, err := ldapserver.Prepare(ldapserver.Config{Dir: dir, Address: address})
	if err != nil {
		return LDAPInfo{}, err
	}
	return fromServerInfo(info), nil
}

func (defaultLDAP) Command(dir, address string) []string {
	return ldapserver.Command(ldapserver.Config{Dir: dir, Address: address})
}

func (defaultLDAP) Ready(ctx context.Context, info LDAPInfo) error {
	return ldapserver.Ready(ctx, ldapserver.Info{URL: info.URL, URLS: info.URLS, BindDN: info.BindDN,
		PasswordFile: info.PasswordFile, CAFile: info.CAFile})
}

func fromServerInfo(i ldapserver.Info) LDAPInfo {
	return LDAPInfo{URL: i.URL, URLS: i.URLS, BindDN: i.BindDN, PasswordFile: i.PasswordFile, CAFile: i.CAFile}
}
