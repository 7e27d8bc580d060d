package ldapserver

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func startLocal(t *testing.T) (*Process, Config) {
	t.Helper()
	cfg, err := LocalConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
	return p, cfg
}

func TestServesGluuEntriesOverLDAPAndLDAPS(t *testing.T) {
	p, _ := startLocal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := []Entry{
		{DN: ApplianceDN, Attrs: map[string][]string{"objectClass": {"top", "gluuAppliance"}, CacheAttribute: {DefaultCacheConfiguration}}},
		{DN: ConfigurationDN, Attrs: map[string][]string{"objectClass": {"top", "gluuConfiguration"}, CacheAttribute: {DefaultCacheConfiguration}}},
	}
	for _, url := range []string{p.Info.URL, p.Info.URLS} {
		t.Run(strings.SplitN(url, ":", 2)[0], func(t *testing.T) {
			got, err := Search(ctx, p.Info, url, Suffix, "(|(objectClass=gluuConfiguration)(objectClass=gluuAppliance))", "objectClass", CacheAttribute)
			if err != nil {
				t.Fatal(err)
			}
			// ldapsearch prints entries in database order; compare as a set ordered by DN.
			if len(got) == 2 && got[0].DN > got[1].DN {
				got[0], got[1] = got[1], got[0]
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRejectsWrongPasswordAndUntrustedCA(t *testing.T) {
	p, _ := startLocal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wrongPW := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrongPW, []byte("not-the-password"), 0o600); err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(t.TempDir(), "other-ca.pem")
	other, err := LocalConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	otherInfo, err := Prepare(other)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(otherInfo.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherCA, b, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		url     string
		pwFile  string
		caFile  string
		wantErr string
	}{
		{"wrong password", p.Info.URL, wrongPW, p.Info.CAFile, "Invalid credentials (49)"},
		{"CA of another lab", p.Info.URLS, p.Info.PasswordFile, otherCA, "Can't contact LDAP server (-1)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info := p.Info
			info.PasswordFile, info.CAFile = tc.pwFile, tc.caFile
			_, err := Search(ctx, info, tc.url, Suffix, "(objectClass=*)", "dn")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Search error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestPrepareIsIdempotent(t *testing.T) {
	cfg, err := LocalConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	first, err := Prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	files := []string{passwordFile, caCertFile, caKeyFile, serverCertFile, serverKeyFile, confFile, dataFile, schemaFile, filepath.Join(dbDir, "data.mdb")}
	before := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(cfg.Dir, f))
		if err != nil {
			t.Fatal(err)
		}
		before[f] = b
	}
	second, err := Prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Errorf("second Prepare returned %+v, first %+v", second, first)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(cfg.Dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before[f], b) {
			t.Errorf("%s changed on the second Prepare", f)
		}
	}
	for _, f := range []string{passwordFile, caKeyFile, serverKeyFile, confFile} {
		st, err := os.Stat(filepath.Join(cfg.Dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	conf := string(before[confFile])
	if strings.Contains(conf, strings.TrimSpace(string(before[passwordFile]))) {
		t.Error("slapd.conf contains the password in clear")
	}

	// A new address gets a new server certificate from the same CA; the password stays.
	cfg.Address = "127.0.0.2"
	third, err := Prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(third.URL, "ldap://127.0.0.2:") {
		t.Errorf("URL = %s", third.URL)
	}
	out, err := exec.Command("openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", filepath.Join(cfg.Dir, serverCertFile)).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "IP Address:127.0.0.2") {
		t.Errorf("server certificate SAN = %s, want 127.0.0.2", out)
	}
	for _, f := range []string{passwordFile, caCertFile} {
		b, _ := os.ReadFile(filepath.Join(cfg.Dir, f))
		if !bytes.Equal(before[f], b) {
			t.Errorf("%s changed with the address", f)
		}
	}
}

func TestCommand(t *testing.T) {
	cfg := Config{Dir: "/lab/gluu", Address: "10.77.0.5", Slapd: "slapd"}
	got := Command(cfg)
	want := []string{"slapd", "-d", "0", "-h", "ldap://10.77.0.5:389/ ldaps://10.77.0.5:636/", "-f", "/lab/gluu/slapd.conf"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Command (-want +got):\n%s", diff)
	}
}

func TestParseLDIF(t *testing.T) {
	got, err := ParseLDIF("dn: o=gluu\no: gluu\n\n# comment\ndn:: b3U9YSxvPWdsdXU=\ndescription:: IGxlYWRpbmcgc3BhY2U=\ndescription: x\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{DN: "o=gluu", Attrs: map[string][]string{"o": {"gluu"}}},
		{DN: "ou=a,o=gluu", Attrs: map[string][]string{"description": {" leading space", "x"}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseLDIF (-want +got):\n%s", diff)
	}
}
