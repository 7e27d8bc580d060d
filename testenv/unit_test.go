package testenv

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

func TestInventoryHCL(t *testing.T) {
	got := inventoryHCL("/lab/id_ed25519", "/lab/known_hosts", []Host{
		{Name: "node1", Address: "10.213.7.11"},
		{Name: "node2", Address: "10.213.7.12"},
		{Name: "gluu", Address: "10.213.7.5"},
	})
	want := `defaults {
  user        = "root"
  port        = 22
  private_key = "/lab/id_ed25519"
  known_hosts = "/lab/known_hosts"
}

host "node1" {
  address = "10.213.7.11"
}

host "node2" {
  address = "10.213.7.12"
}

host "gluu" {
  address = "10.213.7.5"
}

group "redis" {
  hosts = [host.node1, host.node2]
}
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inventory (-want +got):\n%s", diff)
	}
	if _, diags := hclsyntax.ParseConfig([]byte(got), "inventory.hcl", hcl.InitialPos); diags.HasErrors() {
		t.Errorf("inventory does not parse: %s", diags)
	}
}

func TestLDAPVarsHCLParses(t *testing.T) {
	got := ldapVarsHCL(LDAPInfo{URL: "ldap://10.0.0.5:389", BindDN: "cn=directory manager,o=gluu", PasswordFile: "/lab/ldap/admin.password"})
	f, diags := hclsyntax.ParseConfig([]byte(got), "ldap.vars.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parse: %s", diags)
	}
	attrs, diags := f.Body.JustAttributes()
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	values := map[string]string{}
	for name, a := range attrs {
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		values[name] = v.AsString()
	}
	want := map[string]string{
		"gluu_ldap_url":           "ldap://10.0.0.5:389",
		"gluu_ldap_bind_dn":       "cn=directory manager,o=gluu",
		"gluu_ldap_password_file": "/lab/ldap/admin.password",
	}
	if diff := cmp.Diff(want, values); diff != "" {
		t.Errorf("vars (-want +got):\n%s", diff)
	}
}

func TestHCLString(t *testing.T) {
	for _, s := range []string{"plain", `quo"te`, `back\slash`, "${not_a_template}", "%{if x}"} {
		src := "v = " + hclString(s) + "\n"
		f, diags := hclsyntax.ParseConfig([]byte(src), "x.hcl", hcl.InitialPos)
		if diags.HasErrors() {
			t.Errorf("%q: %s", s, diags)
			continue
		}
		attrs, _ := f.Body.JustAttributes()
		v, diags := attrs["v"].Expr.Value(nil)
		if diags.HasErrors() || v.AsString() != s {
			t.Errorf("%q round-trips as %#v (%s)", s, v, diags)
		}
	}
}

func TestParseRole(t *testing.T) {
	tests := []struct{ out, want string }{
		{"master\n3129659\n10.0.0.12\n6380\n3129659\n", "master"},
		{"slave\n10.0.0.11\n6379\nconnected\n3167038\n", "replica of 10.0.0.11:6379 (connected)"},
		{"NOAUTH Authentication required.\n", "unknown: NOAUTH Authentication required."},
		{"DENIED Redis is running in protected mode because protected mode is enabled. In this mode ...\n", "unknown: DENIED Redis is running in protected mode because protected mode is enabled"},
		{"", "unknown: empty reply"},
	}
	for _, tt := range tests {
		if got := parseRole(tt.out); got != tt.want {
			t.Errorf("parseRole(%q) = %q, want %q", tt.out, got, tt.want)
		}
	}
}

func TestPickSubnet(t *testing.T) {
	p := netip.MustParsePrefix
	cands := []netip.Prefix{p("10.213.1.0/24"), p("10.213.2.0/24"), p("10.213.3.0/24")}
	tests := []struct {
		name string
		used []netip.Prefix
		want string
	}{
		{"nothing used", nil, "10.213.1.0/24"},
		{"same /24 used", []netip.Prefix{p("10.213.1.0/24")}, "10.213.2.0/24"},
		{"a host route inside", []netip.Prefix{p("10.213.1.7/32")}, "10.213.2.0/24"},
		{"a wider route covers two", []netip.Prefix{p("10.213.0.0/23"), p("10.213.2.0/25")}, "10.213.3.0/24"},
		{"all used", []netip.Prefix{p("10.0.0.0/8")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pickSubnet(cands, tt.used)
			if tt.want == "" {
				if err == nil {
					t.Errorf("got %s, want an error", got)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Errorf("got %s, %v, want %s", got, err, tt.want)
			}
		})
	}
}

func TestMissingPackages(t *testing.T) {
	reqs := []requirement{{"/a", "pa"}, {"/b", "pb"}, {"/c", "pb"}, {"/d", "pd"}}
	installed := map[string]bool{"/a": true, "/d": true}
	got := missingPackages(reqs, func(p string) bool { return installed[p] })
	if diff := cmp.Diff([]string{"pb"}, got); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}
}

func TestNames(t *testing.T) {
	// Kernel link names are at most 15 bytes: the bridge and the veth of node240 must fit.
	id := labID("/some/dir", 0)
	for _, name := range []string{namePrefix + id, namePrefix + id + "v240"} {
		if len(name) > 15 {
			t.Errorf("link name %s is longer than 15 bytes", name)
		}
	}
	if labID("/a", 0) == labID("/b", 0) || labID("/a", 0) == labID("/a", 1) {
		t.Error("lab ids do not depend on the directory and sequence")
	}
}
