package testenv

import (
	"fmt"
	"strings"
)

// hclString quotes s as an HCL string literal: escapes as in Go plus the template sequences.
func hclString(s string) string {
	q := fmt.Sprintf("%q", s)
	q = strings.ReplaceAll(q, "${", "$${")
	return strings.ReplaceAll(q, "%{", "%%{")
}

// inventoryHCL renders inventory.hcl in the format of docs/architecture.md: the defaults,
// one host block per host, and group "redis" with every host but the LDAP host.
func inventoryHCL(key, knownHosts string, hosts []Host) string {
	var b strings.Builder
	fmt.Fprintf(&b, "defaults {\n")
	fmt.Fprintf(&b, "  user        = %s\n", hclString("root"))
	fmt.Fprintf(&b, "  port        = 22\n")
	fmt.Fprintf(&b, "  private_key = %s\n", hclString(key))
	fmt.Fprintf(&b, "  known_hosts = %s\n", hclString(knownHosts))
	fmt.Fprintf(&b, "}\n")
	var members []string
	for _, h := range hosts {
		fmt.Fprintf(&b, "\nhost %s {\n  address = %s\n}\n", hclString(h.Name), hclString(h.Address))
		if h.Name != LDAPHost {
			members = append(members, "host."+h.Name)
		}
	}
	fmt.Fprintf(&b, "\ngroup %s {\n  hosts = [%s]\n}\n", hclString("redis"), strings.Join(members, ", "))
	return b.String()
}

// ldapVarsHCL renders ldap.vars.hcl, the var-file that points playbooks at the lab's directory.
func ldapVarsHCL(info LDAPInfo) string {
	return fmt.Sprintf("gluu_ldap_url           = %s\ngluu_ldap_bind_dn       = %s\ngluu_ldap_password_file = %s\n",
		hclString(info.URL), hclString(info.BindDN), hclString(info.PasswordFile))
}
