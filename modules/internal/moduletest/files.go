package moduletest

import (
	"os"
	"path/filepath"
	"testing"
)

// WriteFile writes content to dir/name with exactly mode (whatever the umask) and returns its
// path: a real file for a module's probe to look at.
func WriteFile(t testing.TB, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}
