package ldapattribute

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
)

func TestDecodeHCL(t *testing.T) {
	src := `
url           = "ldaps://localhost:1636"
via_ssh       = "gluu"
ca_file       = "files/ca.pem"
bind_dn       = "cn=directory manager,o=gluu"
password_file = "secrets/ldap"
attribute     = "oxCacheConfiguration"
gluu_version  = "3.1"
search {
  base   = "ou=appliances,o=gluu"
  filter = "(objectClass=gluuAppliance)"
}
json_merge = {
  cacheProviderType  = "REDIS"
  redisConfiguration = { redisProviderType = "CLUSTER", defaultPutExpiration = 60 }
}
encrypt_password {
  value = "pw"
}
`
	f, diags := hclparse.NewParser().ParseHCL([]byte(src), "task.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	m := Info().New().(*LDAPAttribute)
	if diags := gohcl.DecodeBody(f.Body, nil, m); diags.HasErrors() {
		t.Fatal(diags)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if m.Search == nil || m.Search.Filter != "(objectClass=gluuAppliance)" || m.EncryptPassword == nil || m.EncryptPassword.field() != "redisConfiguration.password" {
		t.Errorf("decoded %+v", m)
	}
	if m.ViaSSH.AsString() != "gluu" || m.Value != nil {
		t.Errorf("via_ssh = %#v, value = %v", m.ViaSSH, m.Value)
	}
	rc := m.JSONMerge.GetAttr("redisConfiguration").GetAttr("defaultPutExpiration")
	if !rc.Equals(cty.NumberIntVal(60)).True() {
		t.Errorf("json_merge.redisConfiguration.defaultPutExpiration = %#v", rc)
	}
}

func TestValidate(t *testing.T) {
	str := func(s string) *string { return &s }
	valid := func() *LDAPAttribute {
		return &LDAPAttribute{URL: "ldap://gluu:389", BindDN: "cn=directory manager,o=gluu", Password: "x",
			DN: "ou=configuration,o=gluu", Attribute: "oxCacheConfiguration", Value: str("{}")}
	}
	tests := []struct {
		name    string
		edit    func(m *LDAPAttribute)
		wantErr string
	}{
		{"valid", func(m *LDAPAttribute) {}, ""},
		{"bad scheme", func(m *LDAPAttribute) { m.URL = "http://gluu" }, `scheme "http" is not ldap or ldaps`},
		{"url with path", func(m *LDAPAttribute) { m.URL = "ldap://gluu/o=gluu" }, "has a path"},
		{"start_tls on ldaps", func(m *LDAPAttribute) { m.URL = "ldaps://gluu"; m.StartTLS = true }, "start_tls: only for ldap://"},
		{"no password", func(m *LDAPAttribute) { m.Password = "" }, "exactly one of password and password_file"},
		{"both passwords", func(m *LDAPAttribute) { m.PasswordFile = "f" }, "exactly one of password and password_file"},
		{"dn and search", func(m *LDAPAttribute) { m.Search = &SearchSpec{Base: "o=gluu", Filter: "(ou=x)"} }, "exactly one of dn and search"},
		{"neither dn nor search", func(m *LDAPAttribute) { m.DN = "" }, "exactly one of dn and search"},
		{"bad filter", func(m *LDAPAttribute) { m.DN = ""; m.Search = &SearchSpec{Base: "o=gluu", Filter: "(ou=x"} }, `filter "(ou=x"`},
		{"value and json_merge", func(m *LDAPAttribute) { m.JSONMerge = cty.EmptyObjectVal }, "exactly one of value and json_merge"},
		{"value and encrypt_password", func(m *LDAPAttribute) { m.EncryptPassword = &EncryptSpec{Value: "p"} }, "exactly one of value and json_merge"},
		{"json_merge not an object", func(m *LDAPAttribute) { m.Value = nil; m.JSONMerge = cty.StringVal("x") }, "json_merge: must be an object, not string"},
		{"gluu version", func(m *LDAPAttribute) { m.GluuVersion = "4.2" }, `gluu_version: "4.2"`},
		{"via_ssh number", func(m *LDAPAttribute) { m.ViaSSH = cty.NumberIntVal(1) }, "via_ssh: must be true, false or a host name"},
		{"timeout", func(m *LDAPAttribute) { m.Timeout = "soon" }, `timeout: "soon"`},
		{"encrypt field", func(m *LDAPAttribute) {
			m.Value = nil
			m.EncryptPassword = &EncryptSpec{Value: "p", Field: "redisConfiguration..password"}
		}, "has an empty part"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := valid()
			tc.edit(m)
			err := m.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate() = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// Every configuration field carries the user documentation in its doc tag.
func TestEveryFieldIsDocumented(t *testing.T) {
	info := Info()
	if !info.RunOnce || info.Name != "ldap_attribute" || info.Example == "" {
		t.Errorf("Info() = %+v", info)
	}
	for _, typ := range []reflect.Type{reflect.TypeOf(LDAPAttribute{}), reflect.TypeOf(SearchSpec{}), reflect.TypeOf(EncryptSpec{})} {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if f.Tag.Get("hcl") == "" || f.Tag.Get("doc") == "" {
				t.Errorf("%s.%s lacks an hcl or doc tag", typ.Name(), f.Name)
			}
		}
	}
}
