// Package ldapserver prepares and runs a real OpenLDAP slapd shaped like Gluu Server's directory for
// the lab's gluu host: suffix o=gluu, a lab schema with oxCacheConfiguration, the Gluu 4.x entry
// ou=configuration,o=gluu and the Gluu 3.1.x appliance entry, both holding the cache configuration
// that Gluu's setup writes by default. It serves plain LDAP and LDAPS with a certificate from a lab CA.
//
// Prepare writes everything into one directory, Command returns the argv that runs slapd in the
// foreground (the caller decides where: a network namespace or a plain subprocess), and Ready waits
// until slapd answers a bind.
package ldapserver

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

const (
	// Suffix is the directory's base DN.
	Suffix = "o=gluu"
	// BindDN is the administrator's DN (slapd's rootdn).
	BindDN = "cn=directory manager,o=gluu"
	// ConfigurationDN is the Gluu 4.x configuration entry (object class gluuConfiguration).
	ConfigurationDN = "ou=configuration,o=gluu"
	// ApplianceInum is the inum of the lab's Gluu 3.1.x appliance entry.
	ApplianceInum = "@!1A2B.3C4D.5E6F.7A8B!0002!9C0D.1E2F"
	// ApplianceDN is the Gluu 3.1.x appliance entry (object class gluuAppliance).
	ApplianceDN = "inum=" + ApplianceInum + ",ou=appliances,o=gluu"
	// CacheAttribute is the attribute that holds Gluu's cache configuration as JSON.
	CacheAttribute = "oxCacheConfiguration"
	// DefaultCacheConfiguration is the oxCacheConfiguration value Gluu's setup writes by default.
	DefaultCacheConfiguration = `{"cacheProviderType":"IN_MEMORY","memcachedConfiguration":{"servers":"localhost:11211","maxOperationQueueLength":100000,"bufferSize":32768,"defaultPutExpiration":60,"connectionFactoryType":"DEFAULT"},"inMemoryConfiguration":{"defaultPutExpiration":60},"nativePersistenceConfiguration":{"defaultPutExpiration":60,"defaultCleanupBatchSize":10000},"redisConfiguration":{"servers":"localhost:6379","defaultPutExpiration":60}}`

	// DefaultPort is the plain LDAP port used when Config.Port is 0.
	DefaultPort = 389
	// DefaultTLSPort is the LDAPS port used when Config.TLSPort is 0.
	DefaultTLSPort = 636
	// DefaultSchemaDir holds the schema files of Debian's slapd package (core.schema).
	DefaultSchemaDir = "/etc/ldap/schema"
	// DefaultModulePath holds the backend modules of Debian's slapd package (back_mdb).
	DefaultModulePath = "/usr/lib/ldap"
)

// File names inside Config.Dir.
const (
	confFile       = "slapd.conf"
	schemaFile     = "gluu-lab.schema"
	dataFile       = "data.ldif"
	dbDir          = "db"
	passwordFile   = "admin.password"
	caCertFile     = "ca.pem"
	caKeyFile      = "ca-key.pem"
	serverCertFile = "server.pem"
	serverKeyFile  = "server-key.pem"
)

// Config says where the directory lives and where slapd listens.
type Config struct {
	// Dir holds the configuration, the database, the certificates and the password file.
	Dir string
	// Address is the IP (or host name) slapd listens on, e.g. 127.0.0.1 or a lab address. It is
	// also the server certificate's subject alternative name.
	Address string
	// Port is the plain LDAP port (DefaultPort when 0).
	Port int
	// TLSPort is the LDAPS port (DefaultTLSPort when 0).
	TLSPort int
	// SchemaDir holds core.schema (DefaultSchemaDir when empty).
	SchemaDir string
	// ModulePath holds slapd's back_mdb module (DefaultModulePath when empty).
	ModulePath string
	// Slapd and Slapadd are the programs to run (found in PATH or /usr/sbin when empty).
	Slapd, Slapadd string
}

// Info tells clients how to reach and authenticate to the directory.
type Info struct {
	// URL is ldap://ADDR:PORT.
	URL string
	// URLS is ldaps://ADDR:TLSPORT.
	URLS string
	// BindDN is the administrator's DN.
	BindDN string
	// PasswordFile holds the administrator's password (mode 0600, no trailing newline).
	PasswordFile string
	// CAFile is the PEM certificate of the lab CA that signed the server certificate.
	CAFile string
}

func (c Config) withDefaults() Config {
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.TLSPort == 0 {
		c.TLSPort = DefaultTLSPort
	}
	if c.SchemaDir == "" {
		c.SchemaDir = DefaultSchemaDir
	}
	if c.ModulePath == "" {
		c.ModulePath = DefaultModulePath
	}
	if c.Slapd == "" {
		c.Slapd = findProgram("slapd")
	}
	if c.Slapadd == "" {
		c.Slapadd = findProgram("slapadd")
	}
	return c
}

// findProgram returns name's path in PATH, or its place in Debian's /usr/sbin (often not in a
// non-login PATH).
func findProgram(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return filepath.Join("/usr/sbin", name)
}

func (c Config) path(name string) string { return filepath.Join(c.Dir, name) }

func (c Config) info() Info {
	return Info{
		URL:          "ldap://" + net.JoinHostPort(c.Address, strconv.Itoa(c.Port)),
		URLS:         "ldaps://" + net.JoinHostPort(c.Address, strconv.Itoa(c.TLSPort)),
		BindDN:       BindDN,
		PasswordFile: c.path(passwordFile),
		CAFile:       c.path(caCertFile),
	}
}

// Prepare writes slapd's configuration, the lab schema, the lab CA and server certificate, the
// administrator's password and the initial data into cfg.Dir. It is idempotent: the password, the CA
// and the database are created once and kept; the server certificate is reissued only when it does
// not match cfg.Address; an existing database is never reloaded.
func Prepare(cfg Config) (Info, error) {
	if cfg.Dir == "" || cfg.Address == "" {
		return Info{}, errors.New("ldapserver: Config.Dir and Config.Address are required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return Info{}, fmt.Errorf("ldapserver: resolve %s: %w", cfg.Dir, err)
	}
	cfg.Dir = dir
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.path(dbDir), 0o700); err != nil {
		return Info{}, fmt.Errorf("ldapserver: create %s: %w", cfg.path(dbDir), err)
	}
	password, err := ensurePassword(cfg.path(passwordFile))
	if err != nil {
		return Info{}, err
	}
	if err := ensureCerts(cfg); err != nil {
		return Info{}, err
	}
	if err := writeIfChanged(cfg.path(schemaFile), []byte(labSchema), 0o644); err != nil {
		return Info{}, err
	}
	if err := writeIfChanged(cfg.path(confFile), []byte(slapdConf(cfg, password)), 0o600); err != nil {
		return Info{}, err
	}
	if err := writeIfChanged(cfg.path(dataFile), []byte(initialData()), 0o644); err != nil {
		return Info{}, err
	}
	if err := loadData(cfg); err != nil {
		return Info{}, err
	}
	return cfg.info(), nil
}

// Command returns the argv that runs slapd in the foreground (no detach, no log output) with the
// configuration Prepare wrote, listening on cfg.Address. slapd runs as the calling user.
func Command(cfg Config) []string {
	if dir, err := filepath.Abs(cfg.Dir); err == nil {
		cfg.Dir = dir
	}
	cfg = cfg.withDefaults()
	urls := "ldap://" + net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port)) + "/ ldaps://" +
		net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.TLSPort)) + "/"
	return []string{cfg.Slapd, "-d", "0", "-h", urls, "-f", cfg.path(confFile)}
}

// Ready waits until the directory at info.URL accepts the administrator's bind, or ctx ends.
func Ready(ctx context.Context, info Info) error {
	pw, err := ReadPassword(info)
	if err != nil {
		return err
	}
	var last error
	for {
		last = tryBind(ctx, info.URL, info.BindDN, pw)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ldapserver: %s not ready: %w (last error: %v)", info.URL, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ReadPassword returns the administrator's password from info.PasswordFile.
func ReadPassword(info Info) (string, error) {
	b, err := os.ReadFile(info.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("ldapserver: read password: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func tryBind(ctx context.Context, url, dn, pw string) error {
	d := &net.Dialer{Timeout: time.Second}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d.Timeout {
		d.Timeout = time.Until(dl)
	}
	c, err := ldap.DialURL(url, ldap.DialWithDialer(d))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetTimeout(2 * time.Second)
	return c.Bind(dn, pw)
}

func ensurePassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("ldapserver: read %s: %w", path, err)
	}
	raw := make([]byte, 18)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("ldapserver: generate password: %w", err)
	}
	pw := base64.RawURLEncoding.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(pw), 0o600); err != nil {
		return "", fmt.Errorf("ldapserver: write %s: %w", path, err)
	}
	return pw, nil
}

// ssha returns the {SSHA} hash of pw for slapd's rootpw. The salt is derived from the password so
// the configuration file is the same on every Prepare.
func ssha(pw string) string {
	sum := sha256.Sum256([]byte("runbook lab salt\x00" + pw))
	salt := sum[:8]
	h := sha1.New()
	h.Write([]byte(pw))
	h.Write(salt)
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(h.Sum(nil), salt...))
}

func slapdConf(cfg Config, password string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# slapd configuration for the runbook lab's Gluu directory (written by ldapserver.Prepare).\n")
	fmt.Fprintf(&b, "include %s\n", filepath.Join(cfg.SchemaDir, "core.schema"))
	fmt.Fprintf(&b, "include %s\n\n", cfg.path(schemaFile))
	fmt.Fprintf(&b, "pidfile %s\nargsfile %s\n\n", cfg.path("slapd.pid"), cfg.path("slapd.args"))
	fmt.Fprintf(&b, "modulepath %s\nmoduleload back_mdb\n\n", cfg.ModulePath)
	fmt.Fprintf(&b, "TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n\n",
		cfg.path(caCertFile), cfg.path(serverCertFile), cfg.path(serverKeyFile))
	b.WriteString("disallow bind_anon\n\n")
	b.WriteString("database mdb\n")
	fmt.Fprintf(&b, "suffix %q\n", Suffix)
	fmt.Fprintf(&b, "rootdn %q\n", BindDN)
	fmt.Fprintf(&b, "rootpw %s\n", ssha(password))
	fmt.Fprintf(&b, "directory %s\n", cfg.path(dbDir))
	b.WriteString("maxsize 67108864\n")
	b.WriteString("index objectClass eq\nindex inum eq\n")
	b.WriteString("access to * by * none\n")
	return b.String()
}

func initialData() string {
	return fmt.Sprintf(`dn: o=gluu
objectClass: top
objectClass: organization
o: gluu

dn: ou=configuration,o=gluu
objectClass: top
objectClass: gluuConfiguration
ou: configuration
%[1]s: %[2]s

dn: ou=appliances,o=gluu
objectClass: top
objectClass: organizationalUnit
ou: appliances

dn: %[3]s
objectClass: top
objectClass: gluuAppliance
inum: %[4]s
gluuHostname: gluu.lab
%[1]s: %[2]s
`, CacheAttribute, DefaultCacheConfiguration, ApplianceDN, ApplianceInum)
}

func loadData(cfg Config) error {
	if _, err := os.Stat(filepath.Join(cfg.path(dbDir), "data.mdb")); err == nil {
		return nil
	}
	cmd := exec.Command(cfg.Slapadd, "-q", "-f", cfg.path(confFile), "-l", cfg.path(dataFile))
	out, err := cmd.CombinedOutput()
	if err != nil {
		// Leave no half-loaded database behind, so the next Prepare loads it again.
		os.Remove(filepath.Join(cfg.path(dbDir), "data.mdb"))
		os.Remove(filepath.Join(cfg.path(dbDir), "lock.mdb"))
		return fmt.Errorf("ldapserver: slapadd: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func writeIfChanged(path string, content []byte, mode os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == string(content) {
		return os.Chmod(path, mode)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, content, mode); err != nil {
		return fmt.Errorf("ldapserver: write %s: %w", path, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("ldapserver: chmod %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("ldapserver: write %s: %w", path, err)
	}
	return nil
}
