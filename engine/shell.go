package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// PrivateFolderTest is a shell test, builtins only, that holds when the folder word (a quoted
// path or a quoted variable, e.g. "$d") is the connecting user's own, not a symbolic link and not
// a shared sticky folder like /tmp: a folder where no one else can plant a link in place of a file
// the command will open for writing.
func PrivateFolderTest(word string) string {
	return "[ -O " + word + " ] && [ ! -L " + word + " ] && [ ! -k " + word + " ]"
}

// ShellQuote quotes s for a POSIX shell so that it is passed as one literal word.
func ShellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@%+,", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// FileSpec is a file to write atomically on a host.
type FileSpec struct {
	Path    string
	Content []byte
	// Mode is an octal string like "0644"; empty keeps the default (0644, or the old file's mode).
	Mode string
	// Owner and Group are user and group names; empty leaves them as the writing user's.
	Owner string
	Group string
}

// WriteFile writes f on the host atomically: the content goes over stdin (never on the command line)
// into a new temporary file beside the destination, is checked to be complete, gets its mode and
// owner, and is renamed over the destination. A failure or an interruption leaves the old file as it
// was and removes the temporary file.
//
// It runs as few programs on the host as it can (mv, chown when an owner is set, and head but
// under bash): the temporary name is made here and the file created by the shell itself
// (noclobber: it must not exist), and a mode without execute or special bits is the umask it is
// created with. The content is followed on stdin by one sentinel byte that head(1) -c leaves
// unread: bash's own read finding it proves the whole content arrived, so only other shells (or a
// head that reads ahead, like BusyBox's) count the bytes written with wc(1). Under bash, content
// of at most maxReadUpload bytes without a NUL byte is read by bash itself, not head. On hosts
// where every process costs milliseconds (small VMs) each program saved is a share of the
// write's time.
func WriteFile(ctx context.Context, c Conn, f FileSpec) error {
	q := ShellQuote(f.Path)
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	umask, chmod := "077", ""
	switch m, err := strconv.ParseUint(f.Mode, 8, 32); {
	case f.Mode == "":
		chmod = fmt.Sprintf(`if [ -e %s ]; then chmod --reference=%s "$t"; else chmod 0644 "$t"; fi; `, q, q)
	case err == nil && m&0o7111 == 0:
		umask = fmt.Sprintf("%04o", 0o777&^m)
	default:
		chmod = fmt.Sprintf(`chmod %s "$t"; `, ShellQuote(f.Mode))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "set -eC; umask %s; t=%s; : > \"$t\"; ", umask, ShellQuote(f.Path+".rb-"+hex.EncodeToString(rnd[:])))
	b.WriteString(`trap 'rm -f "$t"' EXIT; trap 'exit 1' HUP INT TERM PIPE; `)
	// An upload cut short (connection lost, run interrupted) ends stdin early and head succeeds:
	// only a complete file may replace the destination. GNU head -c reads no further than the
	// content, so the sentinel is the next byte when all of it came.
	n := len(f.Content)
	if n <= maxReadUpload && bytes.IndexByte(f.Content, 0) < 0 {
		// bash reads the content itself, without head: read -N counts bytes under LC_ALL=C
		// (set for the read only) and cannot keep a NUL byte, of which this content has none
		fmt.Fprintf(&b, `x=; if [ -n "${BASH_VERSION-}" ]; then c=; LC_ALL=C IFS= read -r -N %d c || :; printf %%s "$c" >> "$t"; `+
			`IFS= read -r -n 1 x || :; [ "$x" = %s ] || n=$(LC_ALL=C; printf %%s "${#c}"); c=; `+
			`else head -c %d >> "$t"; n=$(wc -c < "$t"); fi; `, n, UploadSentinel, n)
		fmt.Fprintf(&b, `if [ "$x" != %s ] && [ "$n" -ne %d ]; then echo "upload incomplete: $n of %d bytes" >&2; exit 1; fi; `, UploadSentinel, n, n)
	} else {
		fmt.Fprintf(&b, `head -c %d >> "$t"; x=; if [ -n "${BASH_VERSION-}" ]; then IFS= read -r -n 1 x || :; fi; `, n)
		fmt.Fprintf(&b, `if [ "$x" != %s ]; then n=$(wc -c < "$t"); if [ "$n" -ne %d ]; then echo "upload incomplete: $n of %d bytes" >&2; exit 1; fi; fi; `, UploadSentinel, n, n)
	}
	b.WriteString(chmod)
	if f.Owner != "" || f.Group != "" {
		fmt.Fprintf(&b, `chown %s "$t"; `, ShellQuote(f.Owner+":"+f.Group))
	}
	fmt.Fprintf(&b, `mv -f "$t" %s; trap - EXIT`, q)
	// one reader that holds all of it: a Conn may then send it with the command (sshconn's
	// command shells)
	stdin := bytes.NewReader(append(append(make([]byte, 0, len(f.Content)+len(UploadSentinel)), f.Content...), UploadSentinel...))
	res, err := c.Exec(ctx, Command{Cmd: b.String(), Stdin: stdin})
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	return nil
}

// maxReadUpload is the largest content WriteFile has bash read itself (one string in the
// shell's memory); larger content goes through head(1).
const maxReadUpload = 1 << 20

// UploadSentinel is the byte that follows a file's content on the standard input of WriteFile's
// command (see WriteFile); what came before it is the content.
const UploadSentinel = "."

func firstLines(s string, n int) string {
	s = strings.TrimSpace(s)
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "; ")
}
