package ldapattribute

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// writeBackup saves the value read from the directory as an LDIF change record that restores it
// (`ldapmodify -f FILE`), in dir, mode 0600. The name holds a hash of the DN and a UTC timestamp.
func writeBackup(dir, url string, cur entryState, attr string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("backup: %w", err)
	}
	now := time.Now().UTC()
	sum := sha256.Sum256([]byte(strings.ToLower(cur.dn)))
	name := fmt.Sprintf("%s-%s-%s.ldif", safeName(attr), hex.EncodeToString(sum[:6]), now.Format("20060102T150405.000000000Z"))
	var b strings.Builder
	fmt.Fprintf(&b, "# ldap_attribute backup: the value of %s before runbook changed it.\n", attr)
	fmt.Fprintf(&b, "# Read from %s at %s. Restore with: ldapmodify -H URL -D BINDDN -W -f THIS_FILE\n", url, now.Format(time.RFC3339))
	fmt.Fprintf(&b, "dn:: %s\nchangetype: modify\n", base64.StdEncoding.EncodeToString([]byte(cur.dn)))
	if cur.exists && !strings.ContainsAny(cur.value, "\r\n") {
		fmt.Fprintf(&b, "# Previous value: %s\n", cur.value)
	}
	if cur.exists {
		fmt.Fprintf(&b, "replace: %s\n%s:: %s\n-\n", attr, attr, base64.StdEncoding.EncodeToString([]byte(cur.value)))
	} else {
		fmt.Fprintf(&b, "# %s had no value.\ndelete: %s\n-\n", attr, attr)
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("backup: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("backup %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("backup %s: %w", path, err)
	}
	return path, nil
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}
