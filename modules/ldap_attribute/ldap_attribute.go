// Package ldapattribute implements the ldap_attribute module: set one attribute of one LDAP entry,
// either to a plain value or by merging keys into a JSON document stored in the attribute (Gluu
// Server's oxCacheConfiguration), with a guarded write that cannot lose a concurrent change.
package ldapattribute

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/runbook/runbook/engine"
)

// LDAPAttribute is the configuration of an ldap_attribute task.
type LDAPAttribute struct {
	URL                string    `hcl:"url,attr" doc:"Directory URL, ldap://HOST[:PORT] or ldaps://HOST[:PORT]. With via_ssh, HOST is resolved and dialled from the SSH host (e.g. ldaps://localhost:1636 on the Gluu host)."`
	StartTLS           bool      `hcl:"start_tls,optional" doc:"Upgrade an ldap:// connection with StartTLS before binding."`
	CAFile             string    `hcl:"ca_file,optional" doc:"PEM file of the CA that signed the directory's certificate, on the machine running runbook (relative to the playbook's directory). When unset, the system's CAs are trusted."`
	InsecureSkipVerify bool      `hcl:"insecure_skip_verify,optional" doc:"Do not verify the directory's TLS certificate. Anyone on the path can then read the bind password; runbook warns. Prefer ca_file."`
	BindDN             string    `hcl:"bind_dn,attr" doc:"DN to bind as, e.g. \"cn=directory manager,o=gluu\" (Gluu 4.x) or \"cn=directory manager\" (Gluu 3.1.x with OpenDJ)."`
	Password           string    `hcl:"password,optional" doc:"Bind password (sensitive: redacted from every output). Exactly one of password and password_file is required."`
	PasswordFile       string    `hcl:"password_file,optional" doc:"File holding the bind password, on the machine running runbook (relative to the playbook's directory); a trailing newline is ignored."`
	ViaSSH             cty.Value `hcl:"via_ssh,optional" doc:"Reach the LDAP port through an SSH connection when it is only reachable from a host: true for the task's host, or an inventory host name. The TCP connection then starts at that host, so url names the directory as that host sees it."`
	Timeout            string    `hcl:"timeout,optional" doc:"Time limit for connecting and for each LDAP operation, as a Go duration (default \"30s\")."`

	DN     string      `hcl:"dn,optional" doc:"DN of the entry, e.g. \"ou=configuration,o=gluu\". Exactly one of dn and search is required."`
	Search *SearchSpec `hcl:"search,block" doc:"Find the entry by a search that must match exactly one entry (e.g. Gluu 3.1.x's appliance, whose DN holds a generated inum)."`

	Attribute string    `hcl:"attribute,attr" doc:"Attribute to set, e.g. \"oxCacheConfiguration\". It must hold at most one value."`
	Value     *string   `hcl:"value,optional" doc:"The attribute's whole new value. When both the old and the new value are JSON they are compared as canonical JSON. Exactly one of value and json_merge (or encrypt_password) is required."`
	JSONMerge cty.Value `hcl:"json_merge,optional" doc:"Object merged into the attribute's JSON document: objects are merged key by key, recursively; any other value (string, number, list, null) replaces the old one. Every key not named keeps its value, and the document keeps its key order."`

	GluuVersion     string       `hcl:"gluu_version,optional" doc:"Gluu Server version the directory belongs to: \"4\" (default) or \"3.1\". Gluu 3.1.x to 4.1.0 connect to a Redis Cluster without a password, so runbook warns when one is configured for \"3.1\"."`
	EncryptPassword *EncryptSpec `hcl:"encrypt_password,block" doc:"Encrypt a password the way Gluu 4.x expects (with the key in Gluu's salt file) and merge it into the JSON document at field. An already encrypted value can instead be given directly in json_merge."`

	BackupDir string `hcl:"backup_dir,optional" doc:"Directory on the machine running runbook where the previous value is saved (as LDIF that ldapmodify can restore) before each write; relative to the playbook's directory. Default \"./.runbook/backups\". Files are mode 0600: they may hold secrets."`
}

// SearchSpec finds the entry to change.
type SearchSpec struct {
	Base   string `hcl:"base,attr" doc:"Base DN of the subtree searched, e.g. \"ou=appliances,o=gluu\"."`
	Filter string `hcl:"filter,attr" doc:"LDAP filter, e.g. \"(objectClass=gluuAppliance)\". Zero or several matches are an error naming the entries found."`
}

// EncryptSpec encrypts a password with Gluu's salt.
type EncryptSpec struct {
	Value    string `hcl:"value,attr" doc:"The password in clear (sensitive: redacted from every output, and sent nowhere but encrypted into the directory)."`
	SaltFile string `hcl:"salt_file,optional" doc:"Path of Gluu's salt file (a line encodeSalt = ...) on salt_host. Default \"/etc/gluu/conf/salt\" (inside Gluu's container; /opt/gluu-server/etc/gluu/conf/salt from outside it)."`
	SaltHost string `hcl:"salt_host,optional" doc:"Inventory host to read the salt file from over SSH. Default: the task's host. The salt is never shown."`
	Field    string `hcl:"field,optional" doc:"Dot-separated path of the JSON field that receives the encrypted password. Default \"redisConfiguration.password\"."`
}

// DefaultBackupDir is where previous values are saved when backup_dir is unset.
const DefaultBackupDir = "./.runbook/backups"

// defaultSaltFile is Gluu's salt file.
const defaultSaltFile = "/etc/gluu/conf/salt"

// Info describes the ldap_attribute module for the registry.
func Info() engine.ModuleInfo {
	return engine.ModuleInfo{
		Name:    "ldap_attribute",
		Summary: "Set one attribute of one LDAP entry, or merge keys into the JSON it holds.",
		Doc: `Connects to a directory (LDAP, LDAPS or StartTLS; directly or through a host's SSH connection),
finds one entry by ` + "`dn`" + ` or by a ` + "`search`" + ` that must match exactly one entry, and sets one
attribute: to ` + "`value`" + `, or by merging ` + "`json_merge`" + ` into the JSON document it holds, changing only the
keys given and keeping every other field as it was.

Nothing is written when the new value equals the old one as canonical JSON, so a re-run makes no
change. Plan shows a diff of the pretty-printed JSON, with secrets and every field whose name
contains "password" masked.

A write is one LDAP modify that deletes the exact old value and adds the new one. If anyone changed
the attribute after it was read, the directory rejects the delete and nothing is written:
runbook reports that the entry changed since it was read, and a re-run merges into the new value.
Before writing, the old value is saved as an LDIF file in ` + "`backup_dir`" + ` (restore it with
` + "`ldapmodify -f FILE`" + `); the summary prints its path.

For Gluu Server's cache (` + "`oxCacheConfiguration`" + ` on ` + "`ou=configuration,o=gluu`" + ` in Gluu 4.x, on the
appliance entry ` + "`inum=...,ou=appliances,o=gluu`" + ` in 3.1.x): oxAuth and oxTrust (identity) read the cache
configuration only when they start, so they must be restarted; ` + "`notify`" + ` a handler that restarts
them. Gluu 4.x expects ` + "`redisConfiguration.password`" + ` encrypted with the key in its salt file:
` + "`encrypt_password`" + ` does that, reading the salt over SSH.

The task runs once (not once per host of ` + "`on`" + `).

Outputs: ` + "`dn`" + ` (the entry), ` + "`previous_backup`" + ` (the backup file, "" when nothing was written) and
` + "`changed`" + ` (bool).`,
		Example: `task "gluu_cache" {
  on = [host.gluu]
  ldap_attribute {
    url           = "ldaps://localhost:1636"
    via_ssh       = true
    ca_file       = "files/gluu-ldap-ca.pem"
    bind_dn       = "cn=directory manager,o=gluu"
    password_file = "secrets/gluu-ldap-password"
    dn            = "ou=configuration,o=gluu"
    attribute     = "oxCacheConfiguration"
    json_merge = {
      cacheProviderType = "REDIS"
      redisConfiguration = {
        redisProviderType = "CLUSTER"
        servers           = var.redis_servers # "node1:6379,node1:6380,node2:6379,..."
      }
    }
    encrypt_password {
      value = var.redis_password
    }
  }
  notify = [handler.restart_gluu]
}`,
		New:     func() engine.Module { return &LDAPAttribute{} },
		RunOnce: true,
	}
}

// Validate checks the configuration before anything runs.
func (m *LDAPAttribute) Validate() error {
	var errs []error
	if ep, err := parseURL(m.URL); err != nil {
		errs = append(errs, err)
	} else if ep.tls && m.StartTLS {
		errs = append(errs, errors.New("start_tls: only for ldap:// URLs (ldaps:// is TLS already)"))
	}
	if m.BindDN == "" {
		errs = append(errs, errors.New("bind_dn: must not be empty"))
	}
	if (m.Password == "") == (m.PasswordFile == "") {
		errs = append(errs, errors.New("exactly one of password and password_file must be set"))
	}
	if _, err := viaHost(m.ViaSSH, "self"); err != nil {
		errs = append(errs, err)
	}
	if m.Timeout != "" {
		if d, err := time.ParseDuration(m.Timeout); err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("timeout: %q is not a positive duration like \"30s\"", m.Timeout))
		}
	}
	if (m.DN == "") == (m.Search == nil) {
		errs = append(errs, errors.New("exactly one of dn and search must be set"))
	}
	if m.Search != nil {
		if m.Search.Base == "" || m.Search.Filter == "" {
			errs = append(errs, errors.New("search: base and filter must not be empty"))
		} else if _, err := ldap.CompileFilter(m.Search.Filter); err != nil {
			errs = append(errs, fmt.Errorf("search: filter %q: %w", m.Search.Filter, err))
		}
	}
	if m.Attribute == "" {
		errs = append(errs, errors.New("attribute: must not be empty"))
	}
	jsonMode := !m.JSONMerge.IsNull() || m.EncryptPassword != nil
	if (m.Value != nil) == jsonMode {
		errs = append(errs, errors.New("exactly one of value and json_merge (or encrypt_password) must be set"))
	}
	if !m.JSONMerge.IsNull() && m.JSONMerge.IsKnown() {
		if ty := m.JSONMerge.Type(); !ty.IsObjectType() && !ty.IsMapType() {
			errs = append(errs, fmt.Errorf("json_merge: must be an object, not %s", ty.FriendlyName()))
		}
	}
	switch m.GluuVersion {
	case "", "4", "3.1":
	default:
		errs = append(errs, fmt.Errorf("gluu_version: %q is not \"4\" or \"3.1\"", m.GluuVersion))
	}
	if e := m.EncryptPassword; e != nil {
		if e.Value == "" {
			errs = append(errs, errors.New("encrypt_password: value must not be empty"))
		}
		for _, part := range strings.Split(e.field(), ".") {
			if part == "" {
				errs = append(errs, fmt.Errorf("encrypt_password: field %q has an empty part", e.field()))
				break
			}
		}
	}
	return errors.Join(errs...)
}

func (e *EncryptSpec) field() string {
	if e.Field == "" {
		return "redisConfiguration.password"
	}
	return e.Field
}

func (m *LDAPAttribute) gluuVersion() string {
	if m.GluuVersion == "" {
		return "4"
	}
	return m.GluuVersion
}

// entryState is what was read from the directory.
type entryState struct {
	dn     string
	exists bool   // the attribute has a value
	value  string // its value when exists
}

// Run reads the entry and, when the attribute differs, writes it with one guarded modify.
func (m *LDAPAttribute) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	if err := m.Validate(); err != nil {
		return engine.Outcome{}, err
	}
	password, err := m.bindPassword(t)
	if err != nil {
		return engine.Outcome{}, err
	}
	if m.InsecureSkipVerify {
		t.Warnf("insecure_skip_verify: the directory's certificate is not verified; anyone on the path can read the bind password")
	}
	patch, err := m.patch(ctx, t)
	if err != nil {
		return engine.Outcome{}, err
	}
	warnings := m.gluuWarnings(patch)
	for _, w := range warnings {
		t.Warnf("%s", w)
	}

	dial, via, err := m.dialer(ctx, t)
	if err != nil {
		return engine.Outcome{}, err
	}
	if via != "" {
		t.Logf("connecting to %s through %s's SSH connection", m.URL, via)
	}
	conn, err := m.connect(ctx, t, dial, password)
	if err != nil {
		return engine.Outcome{}, err
	}
	defer conn.Close()

	cur, err := m.read(conn)
	if err != nil {
		return engine.Outcome{}, err
	}
	want, diff, equal, err := m.desired(cur, patch)
	if err != nil {
		return engine.Outcome{}, err
	}
	outputs := map[string]cty.Value{
		"dn":              cty.StringVal(cur.dn),
		"previous_backup": cty.StringVal(""),
		"changed":         cty.False,
	}
	restart := m.restartNote()
	if equal {
		return engine.Outcome{Summary: withWarnings(fmt.Sprintf("%s of %s is up to date", m.Attribute, cur.dn), warnings), Outputs: outputs}, nil
	}
	if restart != "" {
		t.Logf("%s", restart)
	}

	var backup string
	change := engine.Change{
		Summary: fmt.Sprintf("update %s of %s (one modify: delete the value read, add the new one)", m.Attribute, cur.dn),
		Diff:    diff,
	}
	err = t.Change(ctx, change, func(ctx context.Context) error {
		path, err := writeBackup(t.Path(m.backupDir()), m.URL, cur, m.Attribute)
		if err != nil {
			return err
		}
		if hook, ok := ctx.Value(beforeWriteKey{}).(func()); ok {
			hook()
		}
		if err := m.write(conn, cur, want); err != nil {
			os.Remove(path) // the directory still holds the value read: nothing to restore
			return err
		}
		backup = path
		return nil
	})
	if err != nil {
		return engine.Outcome{}, err
	}
	var summary string
	if t.DryRun() {
		summary = fmt.Sprintf("%s of %s differs; apply saves the old value to %s and writes the new one", m.Attribute, cur.dn, m.backupDir())
	} else {
		summary = fmt.Sprintf("updated %s of %s; previous value saved to %s", m.Attribute, cur.dn, backup)
		t.Logf("previous value of %s saved to %s (restore with ldapmodify -f)", m.Attribute, backup)
		outputs["previous_backup"] = cty.StringVal(backup)
		outputs["changed"] = cty.True
	}
	if restart != "" {
		summary += "; restart oxauth and identity to apply it (notify a restart handler)"
	}
	return engine.Outcome{Summary: withWarnings(summary, warnings), Outputs: outputs}, nil
}

// beforeWriteKey carries a test hook, called in apply between the read and the write.
type beforeWriteKey struct{}

func withWarnings(summary string, warnings []string) string {
	for _, w := range warnings {
		summary += " (warning: " + w + ")"
	}
	return summary
}

func (m *LDAPAttribute) backupDir() string {
	if m.BackupDir == "" {
		return DefaultBackupDir
	}
	return m.BackupDir
}

func (m *LDAPAttribute) restartNote() string {
	if !strings.EqualFold(m.Attribute, "oxCacheConfiguration") {
		return ""
	}
	return "oxAuth and oxTrust (identity) read the cache configuration only when they start: restart them (notify a handler that restarts oxauth and identity)"
}

func (m *LDAPAttribute) bindPassword(t *engine.Target) (string, error) {
	pw := m.Password
	if m.PasswordFile != "" {
		b, err := os.ReadFile(t.Path(m.PasswordFile))
		if err != nil {
			return "", fmt.Errorf("password_file: %w", err)
		}
		pw = strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("password_file: %s is empty", t.Path(m.PasswordFile))
		}
	}
	t.Secrets().Add(pw)
	return pw, nil
}

// patch returns the JSON object to merge (nil in value mode), with the encrypted password set.
func (m *LDAPAttribute) patch(ctx context.Context, t *engine.Target) (object, error) {
	if m.Value != nil {
		return nil, nil
	}
	p := object{}
	if !m.JSONMerge.IsNull() {
		if !m.JSONMerge.IsWhollyKnown() {
			return nil, errors.New("json_merge: not known yet (it depends on a value computed during apply)")
		}
		plain, paths := m.JSONMerge.UnmarkDeepWithPaths()
		// Values marked sensitive by the playbook are secrets of the run.
		for _, pm := range paths {
			if v, err := pm.Path.Apply(plain); err == nil && v.Type() == cty.String && v.IsKnown() && !v.IsNull() {
				t.Secrets().Add(v.AsString())
			}
		}
		b, err := ctyjson.SimpleJSONValue{Value: plain}.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("json_merge: %w", err)
		}
		v, err := parseJSON(string(b))
		if err != nil {
			return nil, fmt.Errorf("json_merge: %w", err)
		}
		obj, ok := v.(object)
		if !ok {
			return nil, errors.New("json_merge: must be an object")
		}
		p = obj
	}
	if e := m.EncryptPassword; e != nil {
		t.Secrets().Add(e.Value)
		salt, err := readSalt(ctx, t, e)
		if err != nil {
			return nil, err
		}
		enc, err := gluuEncrypt(salt, e.Value)
		if err != nil {
			return nil, fmt.Errorf("encrypt_password: %w", err)
		}
		t.Secrets().Add(enc)
		p = setPath(p, strings.Split(e.field(), "."), enc)
	}
	return p, nil
}

// setPath sets a nested field of o, creating objects on the way.
func setPath(o object, path []string, v any) object {
	if len(path) == 1 {
		return setMember(o, path[0], v)
	}
	child, _ := o.get(path[0])
	co, ok := child.(object)
	if !ok {
		co = object{}
	}
	return setMember(o, path[0], setPath(append(object(nil), co...), path[1:], v))
}

// readSalt reads Gluu's salt over SSH. The salt travels only on the command's stdout; it is
// registered as a secret at once.
func readSalt(ctx context.Context, t *engine.Target, e *EncryptSpec) (string, error) {
	file := e.SaltFile
	if file == "" {
		file = defaultSaltFile
	}
	var c engine.Conn
	host := e.SaltHost
	switch {
	case host == "" || host == t.Host().Name:
		host, c = t.Host().Name, t.Conn()
	case t.Hosts() == nil:
		return "", fmt.Errorf("encrypt_password: no connection to salt_host %q", host)
	default:
		var err error
		if c, err = t.Hosts().Conn(ctx, host); err != nil {
			return "", fmt.Errorf("encrypt_password: connect to salt_host %s: %w", host, err)
		}
	}
	if c == nil {
		return "", errors.New("encrypt_password: no connection to read the salt from")
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := c.Exec(rctx, engine.Command{Cmd: "cat " + engine.ShellQuote(file)})
	if err != nil {
		return "", fmt.Errorf("encrypt_password: read %s on %s: %w", file, host, err)
	}
	// Parse first so the salt is registered before any error text could carry it.
	salt, perr := parseSalt(string(res.Stdout))
	t.Secrets().Add(salt)
	if err := res.Err(); err != nil {
		return "", fmt.Errorf("encrypt_password: read %s on %s: %s", file, host, t.Secrets().Redact(err.Error()))
	}
	if perr != nil {
		return "", fmt.Errorf("encrypt_password: %s on %s: %w", file, host, perr)
	}
	return salt, nil
}

// gluuWarnings returns what the operator should know about the Redis password for the Gluu
// version.
func (m *LDAPAttribute) gluuWarnings(patch object) []string {
	if patch == nil {
		return nil
	}
	pw, set := redisPassword(patch)
	if !set {
		return nil
	}
	switch m.gluuVersion() {
	case "3.1":
		return []string{"gluu_version 3.1: Gluu 3.1.x (up to 4.1.0) connects to a Redis Cluster without a password; the password set in redisConfiguration is not used, so the cluster must accept clients without one"}
	default:
		if m.EncryptPassword == nil && !looksGluuEncrypted(pw) {
			return []string{"redisConfiguration.password does not look encrypted: Gluu 4.x expects it encrypted with the key in its salt file (use encrypt_password)"}
		}
	}
	return nil
}

func redisPassword(patch object) (string, bool) {
	rc, _ := patch.get("redisConfiguration")
	ro, ok := rc.(object)
	if !ok {
		return "", false
	}
	v, ok := ro.get("password")
	s, _ := v.(string)
	return s, ok && s != ""
}

// maxListed is how many DNs an ambiguous search error lists.
const maxListed = 10

// read finds the entry and its attribute's value.
func (m *LDAPAttribute) read(conn *ldap.Conn) (entryState, error) {
	base, scope, filter := m.DN, ldap.ScopeBaseObject, "(objectClass=*)"
	if m.Search != nil {
		base, scope, filter = m.Search.Base, ldap.ScopeWholeSubtree, m.Search.Filter
	}
	sizeLimit := 0
	if m.Search != nil {
		sizeLimit = maxListed + 1
	}
	req := ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, sizeLimit, 0, false, filter, []string{m.Attribute}, nil)
	res, err := conn.Search(req)
	truncated := ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) && res != nil
	switch {
	case err == nil || truncated:
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) && m.Search != nil:
		return entryState{}, fmt.Errorf("search base %q does not exist: %w", base, err)
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return entryState{}, fmt.Errorf("entry %q not found: %w", base, err)
	default:
		return entryState{}, fmt.Errorf("read %s: %w", base, err)
	}
	if m.Search != nil && len(res.Entries) != 1 {
		dns := make([]string, len(res.Entries))
		for i, e := range res.Entries {
			dns[i] = e.DN
		}
		if len(dns) == 0 {
			return entryState{}, fmt.Errorf("search under %q with filter %s matched no entry; it must match exactly one", base, filter)
		}
		count := fmt.Sprint(len(dns))
		if truncated {
			count = "more than " + fmt.Sprint(maxListed)
			dns = append(dns[:maxListed], "...")
		}
		return entryState{}, fmt.Errorf("search under %q with filter %s matched %s entries (%s); it must match exactly one: narrow the filter or use dn", base, filter, count, strings.Join(dns, "; "))
	}
	if len(res.Entries) != 1 {
		return entryState{}, fmt.Errorf("entry %q not found", base)
	}
	e := res.Entries[0]
	vals := e.GetEqualFoldAttributeValues(m.Attribute)
	switch len(vals) {
	case 0:
		return entryState{dn: e.DN}, nil
	case 1:
		return entryState{dn: e.DN, exists: true, value: vals[0]}, nil
	}
	return entryState{}, fmt.Errorf("%s of %s has %d values; ldap_attribute manages a single value", m.Attribute, e.DN, len(vals))
}

// desired computes the new value, the diff to show, and whether the attribute is already right.
func (m *LDAPAttribute) desired(cur entryState, patch object) (string, string, bool, error) {
	name := m.Attribute + " of " + cur.dn
	if m.Value != nil {
		want := *m.Value
		if cur.exists && cur.value == want {
			return want, "", true, nil
		}
		oldJ, errOld := parseJSON(cur.value)
		newJ, errNew := parseJSON(want)
		if errNew == nil && (errOld == nil || !cur.exists) {
			if cur.exists && canonical(oldJ) == canonical(newJ) {
				return want, "", true, nil
			}
			return want, jsonDiff(name, oldJ, newJ, cur.exists), false, nil
		}
		old := ""
		if cur.exists {
			old = cur.value + "\n"
		}
		return want, textDiff(name, old, want+"\n"), false, nil
	}
	var base any = object{}
	if cur.exists {
		v, err := parseJSON(cur.value)
		if err != nil {
			return "", "", false, fmt.Errorf("%s is not JSON (%v); json_merge needs a JSON object: nothing written", name, err)
		}
		if _, ok := v.(object); !ok {
			return "", "", false, fmt.Errorf("%s is JSON but not an object; json_merge needs an object: nothing written", name)
		}
		base = v
	}
	merged := merge(base, patch)
	if cur.exists && canonical(base) == canonical(merged) {
		return cur.value, "", true, nil
	}
	return encodeJSON(merged, false, ""), jsonDiff(name, base, merged, cur.exists), false, nil
}

// write replaces the value read with want in one modify. Deleting the exact old value makes the
// directory refuse the whole modify when the attribute changed since it was read.
func (m *LDAPAttribute) write(conn *ldap.Conn, cur entryState, want string) error {
	req := ldap.NewModifyRequest(cur.dn, nil)
	if cur.exists {
		req.Delete(m.Attribute, []string{cur.value})
	}
	req.Add(m.Attribute, []string{want})
	err := conn.Modify(req)
	switch {
	case err == nil:
		return nil
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchAttribute),
		!cur.exists && (ldap.IsErrorWithCode(err, ldap.LDAPResultAttributeOrValueExists) || ldap.IsErrorWithCode(err, ldap.LDAPResultConstraintViolation)):
		return fmt.Errorf("the entry changed since it was read; re-run (nothing was written): %w", err)
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return fmt.Errorf("the entry changed since it was read (it no longer exists); re-run (nothing was written): %w", err)
	}
	return fmt.Errorf("modify %s: %w", cur.dn, err)
}

var (
	_ engine.Module    = (*LDAPAttribute)(nil)
	_ engine.Validator = (*LDAPAttribute)(nil)
)
