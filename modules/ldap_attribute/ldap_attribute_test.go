package ldapattribute

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/enginetest"
	"github.com/runbook/runbook/testenv/ldapserver"
)

// The integration tests run a real slapd (testenv/ldapserver) on 127.0.0.1 and check the directory
// with the real ldapsearch client.

func startSlapd(t *testing.T) *ldapserver.Process {
	t.Helper()
	cfg, err := ldapserver.LocalConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := ldapserver.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// recorder is an engine.Reporter that keeps every line shown.
type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) Log(host, task, msg string)      { r.add("log: " + msg) }
func (r *recorder) Progress(host, task, msg string) { r.add("progress: " + msg) }
func (r *recorder) Warn(host, task, msg string)     { r.add("warning: " + msg) }
func (r *recorder) Change(host, task string, c engine.Change, dryRun bool) {
	r.add("change: " + c.Summary + "\n" + c.Diff)
}
func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, s)
}
func (r *recorder) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// hosts is a fake engine.Hosts.
type hosts map[string]engine.Conn

func (h hosts) Conn(ctx context.Context, name string) (engine.Conn, error) {
	if c, ok := h[name]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("no host %q", name)
}

func (h hosts) Lookup(name string) (engine.Host, bool) {
	_, ok := h[name]
	return engine.Host{Name: name}, ok
}

type env struct {
	srv  *ldapserver.Process
	dir  string // the playbook's directory
	conn *enginetest.Conn
	rep  *recorder
}

func newEnv(t *testing.T) *env {
	return &env{srv: startSlapd(t), dir: t.TempDir(), conn: enginetest.NewConn(), rep: &recorder{}}
}

func (e *env) target(dryRun bool) *engine.Target {
	return engine.NewTarget(engine.TargetOptions{
		Host: engine.Host{Name: "gluu", Address: "127.0.0.1"}, Task: "gluu_cache", Conn: e.conn,
		Hosts: hosts{"gluu": e.conn}, DryRun: dryRun, Reporter: e.rep, Dir: e.dir,
	})
}

// base returns a module bound as the directory's administrator through password_file.
func (e *env) base() *LDAPAttribute {
	return &LDAPAttribute{
		URL: e.srv.Info.URL, BindDN: e.srv.Info.BindDN, PasswordFile: e.srv.Info.PasswordFile,
		Attribute: "oxCacheConfiguration", BackupDir: "backups",
	}
}

// cacheValues returns every oxCacheConfiguration in the directory by DN, read with ldapsearch.
func (e *env) cacheValues(t *testing.T) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	entries, err := ldapserver.Search(ctx, e.srv.Info, e.srv.Info.URLS, ldapserver.Suffix, "(oxCacheConfiguration=*)", "oxCacheConfiguration")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, en := range entries {
		out[en.DN] = strings.Join(en.Attrs["oxCacheConfiguration"], "\n")
	}
	return out
}

func (e *env) modify(t *testing.T, ldif string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := ldapserver.Modify(ctx, e.srv.Info, ldif); err != nil {
		t.Fatal(err)
	}
}

func (e *env) backups(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(e.dir, "backups", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func mustObject(t *testing.T, v map[string]cty.Value) cty.Value {
	t.Helper()
	return cty.ObjectVal(v)
}

// redisMerge is the change the seed procedure makes: Redis, cluster mode, the cluster's nodes.
func redisMerge(t *testing.T) cty.Value {
	return mustObject(t, map[string]cty.Value{
		"cacheProviderType": cty.StringVal("REDIS"),
		"redisConfiguration": cty.ObjectVal(map[string]cty.Value{
			"redisProviderType": cty.StringVal("CLUSTER"),
			"servers":           cty.StringVal("10.9.0.11:6379,10.9.0.12:6379,10.9.0.13:6379"),
		}),
	})
}

// wantAfterRedisMerge is DefaultCacheConfiguration with redisMerge applied, written by hand: every
// other field and the key order as Gluu wrote them.
const wantAfterRedisMerge = `{"cacheProviderType":"REDIS","memcachedConfiguration":{"servers":"localhost:11211","maxOperationQueueLength":100000,"bufferSize":32768,"defaultPutExpiration":60,"connectionFactoryType":"DEFAULT"},"inMemoryConfiguration":{"defaultPutExpiration":60},"nativePersistenceConfiguration":{"defaultPutExpiration":60,"defaultCleanupBatchSize":10000},"redisConfiguration":{"servers":"10.9.0.11:6379,10.9.0.12:6379,10.9.0.13:6379","defaultPutExpiration":60,"redisProviderType":"CLUSTER"}}`

func TestGluu4PlanApplyRerunRestore(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	m := e.base()
	m.DN = ldapserver.ConfigurationDN
	m.JSONMerge = redisMerge(t)
	before := e.cacheValues(t)

	// Plan: one change with a JSON diff, nothing written.
	plan := e.target(true)
	out, err := m.Run(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(plan.Changes()); n != 1 {
		t.Fatalf("plan recorded %d changes, want 1", n)
	}
	diff := plan.Changes()[0].Diff
	for _, want := range []string{`-  "cacheProviderType": "IN_MEMORY",`, `+  "cacheProviderType": "REDIS",`, `+    "redisProviderType": "CLUSTER",`} {
		if !strings.Contains(diff, want) {
			t.Errorf("plan diff lacks %q:\n%s", want, diff)
		}
	}
	if got := e.cacheValues(t); got[ldapserver.ConfigurationDN] != before[ldapserver.ConfigurationDN] {
		t.Fatalf("plan wrote to the directory: %s", got[ldapserver.ConfigurationDN])
	}
	if out.Outputs["changed"] != cty.False || len(e.backups(t)) != 0 {
		t.Errorf("plan: changed=%#v backups=%v", out.Outputs["changed"], e.backups(t))
	}

	// Apply: the merged document, every other field as it was, the other entry untouched.
	apply := e.target(false)
	out, err = m.Run(ctx, apply)
	if err != nil {
		t.Fatal(err)
	}
	after := e.cacheValues(t)
	if got := after[ldapserver.ConfigurationDN]; got != wantAfterRedisMerge {
		t.Errorf("after apply:\n got %s\nwant %s", got, wantAfterRedisMerge)
	}
	if after[ldapserver.ApplianceDN] != before[ldapserver.ApplianceDN] {
		t.Errorf("the 3.1.x entry changed: %s", after[ldapserver.ApplianceDN])
	}
	backup := out.Outputs["previous_backup"].AsString()
	if out.Outputs["changed"] != cty.True || out.Outputs["dn"] != cty.StringVal(ldapserver.ConfigurationDN) {
		t.Errorf("outputs = %#v", out.Outputs)
	}
	if !strings.Contains(out.Summary, backup) || !strings.Contains(out.Summary, "restart") || !strings.Contains(out.Summary, "identity") {
		t.Errorf("summary %q does not name the backup %s and the restart", out.Summary, backup)
	}
	st, err := os.Stat(backup)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || filepath.Dir(backup) != filepath.Join(e.dir, "backups") {
		t.Errorf("backup %s has mode %v", backup, st.Mode().Perm())
	}

	// Re-run: nothing to do.
	rerun := e.target(false)
	out, err = m.Run(ctx, rerun)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rerun.Changes()); n != 0 || out.Outputs["changed"] != cty.False {
		t.Errorf("re-run recorded %d changes (changed=%#v), want 0", n, out.Outputs["changed"])
	}
	if got := e.cacheValues(t)[ldapserver.ConfigurationDN]; got != wantAfterRedisMerge {
		t.Errorf("re-run changed the value: %s", got)
	}
	if n := len(e.backups(t)); n != 1 {
		t.Errorf("%d backups after the re-run, want 1", n)
	}

	// The backup restores the previous value with the real ldapmodify.
	b, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	e.modify(t, string(b))
	if got := e.cacheValues(t)[ldapserver.ConfigurationDN]; got != ldapserver.DefaultCacheConfiguration {
		t.Errorf("after restoring the backup: %s", got)
	}
}

func TestGluu31ApplianceFoundBySearch(t *testing.T) {
	e := newEnv(t)
	m := e.base()
	m.Search = &SearchSpec{Base: "ou=appliances,o=gluu", Filter: "(objectClass=gluuAppliance)"}
	m.GluuVersion = "3.1"
	m.JSONMerge = cty.ObjectVal(map[string]cty.Value{
		"cacheProviderType":  cty.StringVal("REDIS"),
		"redisConfiguration": cty.ObjectVal(map[string]cty.Value{"password": cty.StringVal("plain-redis-pw")}),
	})
	before := e.cacheValues(t)
	out, err := m.Run(context.Background(), e.target(false))
	if err != nil {
		t.Fatal(err)
	}
	if out.Outputs["dn"] != cty.StringVal(ldapserver.ApplianceDN) {
		t.Errorf("dn output = %#v", out.Outputs["dn"])
	}
	if !strings.Contains(out.Summary, "without a password") {
		t.Errorf("summary %q lacks the Gluu 3.1 password warning", out.Summary)
	}
	after := e.cacheValues(t)
	want := strings.Replace(strings.Replace(ldapserver.DefaultCacheConfiguration, `"IN_MEMORY"`, `"REDIS"`, 1),
		`"defaultPutExpiration":60}}`, `"defaultPutExpiration":60,"password":"plain-redis-pw"}}`, 1)
	if after[ldapserver.ApplianceDN] != want {
		t.Errorf("appliance after apply:\n got %s\nwant %s", after[ldapserver.ApplianceDN], want)
	}
	if after[ldapserver.ConfigurationDN] != before[ldapserver.ConfigurationDN] {
		t.Errorf("the 4.x entry changed")
	}
	if strings.Contains(e.rep.text(), "plain-redis-pw") {
		t.Errorf("the Redis password was shown:\n%s", e.rep.text())
	}
}

func TestErrorsWriteNothing(t *testing.T) {
	e := newEnv(t)
	e.modify(t, `dn: inum=@!0000.0000!0002!SECOND,ou=appliances,o=gluu
changetype: add
objectClass: top
objectClass: gluuAppliance
inum: @!0000.0000!0002!SECOND
oxCacheConfiguration: {"cacheProviderType":"IN_MEMORY"}

dn: ou=broken,o=gluu
changetype: add
objectClass: top
objectClass: gluuConfiguration
ou: broken
oxCacheConfiguration: cacheProviderType=REDIS
`)
	wrongPW := filepath.Join(e.dir, "wrong-password")
	if err := os.WriteFile(wrongPW, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		edit    func(m *LDAPAttribute)
		wantErr []string
	}{
		{"wrong password", func(m *LDAPAttribute) { m.DN = ldapserver.ConfigurationDN; m.PasswordFile = wrongPW },
			[]string{"wrong bind_dn or password", "Invalid Credentials"}},
		{"missing entry", func(m *LDAPAttribute) { m.DN = "ou=nope,o=gluu" },
			[]string{`entry "ou=nope,o=gluu" not found`}},
		{"search matching two entries", func(m *LDAPAttribute) {
			m.Search = &SearchSpec{Base: "ou=appliances,o=gluu", Filter: "(objectClass=gluuAppliance)"}
		}, []string{"(objectClass=gluuAppliance) matched 2 entries", ldapserver.ApplianceDN, "inum=@!0000.0000!0002!SECOND,ou=appliances,o=gluu", "exactly one"}},
		{"search matching nothing", func(m *LDAPAttribute) {
			m.Search = &SearchSpec{Base: "o=gluu", Filter: "(inum=nothing)"}
		}, []string{"(inum=nothing) matched no entry"}},
		{"non-JSON attribute", func(m *LDAPAttribute) { m.DN = "ou=broken,o=gluu" },
			[]string{"oxCacheConfiguration of ou=broken,o=gluu is not JSON", "nothing written"}},
	}
	before := e.cacheValues(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := e.base()
			m.JSONMerge = redisMerge(t)
			tc.edit(m)
			tgt := e.target(false)
			_, err := m.Run(context.Background(), tgt)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if n := len(tgt.Changes()); n != 0 {
				t.Errorf("%d changes recorded", n)
			}
		})
	}
	after := e.cacheValues(t)
	if len(after) != 4 {
		t.Errorf("ldapsearch found %d entries, want 4", len(after))
	}
	for dn, v := range before {
		if after[dn] != v {
			t.Errorf("%s changed: %s", dn, after[dn])
		}
	}
	if b := e.backups(t); len(b) != 0 {
		t.Errorf("backups written: %v", b)
	}
}

func TestConcurrentChangeIsRefused(t *testing.T) {
	e := newEnv(t)
	m := e.base()
	m.DN = ldapserver.ConfigurationDN
	m.JSONMerge = redisMerge(t)
	// Someone raises inMemoryConfiguration's expiration between our read and our write.
	theirs := strings.Replace(ldapserver.DefaultCacheConfiguration, `"inMemoryConfiguration":{"defaultPutExpiration":60}`, `"inMemoryConfiguration":{"defaultPutExpiration":90}`, 1)
	hooked := false
	ctx := context.WithValue(context.Background(), beforeWriteKey{}, func() {
		hooked = true
		e.modify(t, "dn: ou=configuration,o=gluu\nchangetype: modify\nreplace: oxCacheConfiguration\noxCacheConfiguration: "+theirs+"\n-\n")
	})
	_, err := m.Run(ctx, e.target(false))
	if !hooked {
		t.Fatal("the hook between read and write did not run")
	}
	if err == nil || !strings.Contains(err.Error(), "the entry changed since it was read; re-run") {
		t.Fatalf("Run error = %v, want the entry-changed error", err)
	}
	if got := e.cacheValues(t)[ldapserver.ConfigurationDN]; got != theirs {
		t.Errorf("the concurrent change was lost: %s", got)
	}
	if b := e.backups(t); len(b) != 0 {
		t.Errorf("a backup of the stale value was kept: %v", b)
	}

	// A re-run merges into their value.
	if _, err := m.Run(context.Background(), e.target(false)); err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(wantAfterRedisMerge, `"inMemoryConfiguration":{"defaultPutExpiration":60}`, `"inMemoryConfiguration":{"defaultPutExpiration":90}`, 1)
	if got := e.cacheValues(t)[ldapserver.ConfigurationDN]; got != want {
		t.Errorf("after the re-run:\n got %s\nwant %s", got, want)
	}
}

func TestEncryptPasswordThroughSSH(t *testing.T) {
	e := newEnv(t)
	// Two other inventory hosts: the LDAP port is reachable from "ldaphost" (its fake SSH connection
	// dials from this machine and records the address), the salt file is on "saltbox". The task's own
	// host (e.conn) answers nothing.
	var dialed []string
	var mu sync.Mutex
	ldapConn := enginetest.NewConn()
	ldapConn.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, addr)
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	// A public vector of Gluu's scheme: "secret" under this salt is 4rl2tJEQFkY=.
	saltConn := enginetest.NewConn().On(`^cat /opt/gluu-server/etc/gluu/conf/salt$`, enginetest.Reply("encodeSalt = 2CG9qwCzH5haWXXuUIUe4wFT\n", 0))
	m := e.base()
	m.URL = e.srv.Info.URLS
	m.CAFile = e.srv.Info.CAFile
	m.ViaSSH = cty.StringVal("ldaphost")
	m.DN = ldapserver.ConfigurationDN
	m.JSONMerge = redisMerge(t)
	m.EncryptPassword = &EncryptSpec{Value: "secret", SaltHost: "saltbox", SaltFile: "/opt/gluu-server/etc/gluu/conf/salt"}
	target := func() *engine.Target {
		return engine.NewTarget(engine.TargetOptions{
			Host: engine.Host{Name: "gluu"}, Task: "gluu_cache", Conn: e.conn, Reporter: e.rep, Dir: e.dir,
			Hosts: hosts{"gluu": e.conn, "ldaphost": ldapConn, "saltbox": saltConn},
		})
	}

	tgt := target()
	if _, err := m.Run(context.Background(), tgt); err != nil {
		t.Fatal(err)
	}
	got := e.cacheValues(t)[ldapserver.ConfigurationDN]
	if !strings.Contains(got, `"redisProviderType":"CLUSTER","password":"4rl2tJEQFkY="}`) {
		t.Errorf("stored value lacks the encrypted password: %s", got)
	}
	want := strings.TrimPrefix(e.srv.Info.URLS, "ldaps://")
	if len(dialed) != 1 || dialed[0] != want {
		t.Errorf("dialed %v through SSH, want [%s]", dialed, want)
	}
	if calls := e.conn.Calls(); len(calls) != 0 {
		t.Errorf("commands ran on the task's host: %v", calls)
	}
	for _, c := range saltConn.Calls() {
		if c.Cmd != "cat /opt/gluu-server/etc/gluu/conf/salt" || c.Stdin != "" {
			t.Errorf("unexpected remote command %q", c.Cmd)
		}
	}
	shown := e.rep.text()
	for _, secret := range []string{"secret\"", "4rl2tJEQFkY=", "2CG9qwCzH5haWXXuUIUe4wFT"} {
		if strings.Contains(shown, secret) {
			t.Errorf("%q was shown:\n%s", secret, shown)
		}
	}
	if !strings.Contains(shown, `"password": "(sensitive, changed)"`) {
		t.Errorf("the diff does not say the password changed:\n%s", shown)
	}

	// Same password, same salt: the encrypted value is the same, so nothing to do.
	rerun := target()
	if _, err := m.Run(context.Background(), rerun); err != nil {
		t.Fatal(err)
	}
	if n := len(rerun.Changes()); n != 0 {
		t.Errorf("re-run recorded %d changes", n)
	}
}

func TestConnectionModes(t *testing.T) {
	e := newEnv(t)
	var viaSelf []string
	e.conn.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		viaSelf = append(viaSelf, addr)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	if err := os.MkdirAll(filepath.Join(e.dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	pw, err := os.ReadFile(e.srv.Info.PasswordFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "secrets", "ldap"), append(pw, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		edit    func(m *LDAPAttribute)
		wantErr string
	}{
		{"StartTLS with the lab CA", func(m *LDAPAttribute) { m.StartTLS = true; m.CAFile = e.srv.Info.CAFile }, ""},
		{"LDAPS with the lab CA", func(m *LDAPAttribute) { m.URL = e.srv.Info.URLS; m.CAFile = e.srv.Info.CAFile }, ""},
		{"LDAPS without the lab CA", func(m *LDAPAttribute) { m.URL = e.srv.Info.URLS }, "certificate signed by unknown authority"},
		{"LDAPS insecure", func(m *LDAPAttribute) { m.URL = e.srv.Info.URLS; m.InsecureSkipVerify = true }, ""},
		{"password in clear", func(m *LDAPAttribute) { m.PasswordFile, m.Password = "", string(pw) }, ""},
		{"password_file relative to the playbook", func(m *LDAPAttribute) { m.PasswordFile = "secrets/ldap" }, ""},
		{"via the task host's SSH connection", func(m *LDAPAttribute) { m.ViaSSH = cty.True }, ""},
		{"via an unknown host", func(m *LDAPAttribute) { m.ViaSSH = cty.StringVal("nowhere") }, `via_ssh: connect to nowhere: no host "nowhere"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := e.base()
			m.DN = ldapserver.ConfigurationDN
			m.JSONMerge = redisMerge(t)
			tc.edit(m)
			tgt := e.target(true)
			_, err := m.Run(context.Background(), tgt)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(tgt.Changes()) != 1 {
					t.Errorf("plan recorded %d changes, want 1", len(tgt.Changes()))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
		})
	}
	if want := strings.TrimPrefix(e.srv.Info.URL, "ldap://"); len(viaSelf) != 1 || viaSelf[0] != want {
		t.Errorf("dialed %v through the task host, want [%s]", viaSelf, want)
	}
	if strings.Contains(e.rep.text(), string(pw)) {
		t.Errorf("the bind password was shown:\n%s", e.rep.text())
	}
	if strings.Count(e.rep.text(), "insecure_skip_verify") != 1 {
		t.Errorf("want one insecure_skip_verify warning:\n%s", e.rep.text())
	}
}

func TestPlainValue(t *testing.T) {
	e := newEnv(t)
	m := e.base()
	m.DN = ldapserver.ConfigurationDN
	// The same document re-ordered and re-spaced is equal as canonical JSON: nothing to write.
	same := ` {"redisConfiguration":{"defaultPutExpiration":60,"servers":"localhost:6379"},` + strings.TrimPrefix(ldapserver.DefaultCacheConfiguration, "{")
	same = strings.Replace(same, `,"redisConfiguration":{"servers":"localhost:6379","defaultPutExpiration":60}`, "", 1)
	m.Value = &same
	tgt := e.target(false)
	if _, err := m.Run(context.Background(), tgt); err != nil {
		t.Fatal(err)
	}
	if n := len(tgt.Changes()); n != 0 {
		t.Fatalf("an equal document recorded %d changes: %v", n, tgt.Changes())
	}
	other := `{"cacheProviderType":"NATIVE_PERSISTENCE"}`
	m.Value = &other
	if _, err := m.Run(context.Background(), e.target(false)); err != nil {
		t.Fatal(err)
	}
	if got := e.cacheValues(t)[ldapserver.ConfigurationDN]; got != other {
		t.Errorf("value = %s, want %s", got, other)
	}
}
