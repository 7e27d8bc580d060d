package ldapserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Entry is one entry printed by ldapsearch: its DN and attribute values by attribute name.
type Entry struct {
	DN    string
	Attrs map[string][]string
}

// Search runs the real OpenLDAP client, ldapsearch, against url (info.URL or info.URLS) bound as the
// administrator, trusting only the lab CA, and returns the entries it printed. Tests use it to check
// the directory with a client other than the code under test.
func Search(ctx context.Context, info Info, url, base, filter string, attrs ...string) ([]Entry, error) {
	args := []string{"-LLL", "-o", "ldif-wrap=no", "-x", "-H", url, "-D", info.BindDN, "-y", info.PasswordFile, "-b", base, filter}
	args = append(args, attrs...)
	cmd := exec.CommandContext(ctx, "ldapsearch", args...)
	cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+info.CAFile, "LDAPTLS_REQCERT=demand")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ldapsearch -H %s -b %s %s: %w: %s", url, base, filter, err, strings.TrimSpace(stderr.String()))
	}
	return ParseLDIF(stdout.String())
}

// Modify runs the real OpenLDAP client, ldapmodify, against info.URL bound as the administrator,
// applying the LDIF change records in ldif (use "changetype: add" records to add entries).
func Modify(ctx context.Context, info Info, ldif string) error {
	cmd := exec.CommandContext(ctx, "ldapmodify", "-x", "-H", info.URL, "-D", info.BindDN, "-y", info.PasswordFile)
	cmd.Stdin = strings.NewReader(ldif)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ldapmodify -H %s: %w: %s", info.URL, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ParseLDIF parses unwrapped LDIF as printed by `ldapsearch -LLL -o ldif-wrap=no` (plain and
// base64 values; no continuation lines, no URLs).
func ParseLDIF(text string) ([]Entry, error) {
	var entries []Entry
	cur := -1 // index of the entry being read
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			cur = -1
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("ldif: line without a colon: %q", line)
		}
		if strings.HasPrefix(value, ":") {
			b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value[1:]))
			if err != nil {
				return nil, fmt.Errorf("ldif: %s: %w", name, err)
			}
			value = string(b)
		} else {
			value = strings.TrimPrefix(value, " ")
		}
		if strings.EqualFold(name, "dn") {
			entries = append(entries, Entry{DN: value, Attrs: map[string][]string{}})
			cur = len(entries) - 1
			continue
		}
		if cur < 0 {
			return nil, fmt.Errorf("ldif: attribute %s before a dn line", name)
		}
		entries[cur].Attrs[name] = append(entries[cur].Attrs[name], value)
	}
	return entries, nil
}
