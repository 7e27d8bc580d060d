package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// DefaultDir is the lab directory used when Options.Dir is empty.
const DefaultDir = ".testenv"

// DefaultNodes is the number of redis hosts used when Options.Nodes is zero.
const DefaultNodes = 3

// ldapTimeout bounds the wait for slapd to answer after the gluu host boots.
const ldapTimeout = 30 * time.Second

// maxNodes bounds Options.Nodes: host addresses are .11 to .250 of the lab's /24.
const maxNodes = 240

// LDAPHost is the name of the host that runs slapd when the lab has LDAP.
const LDAPHost = "gluu"

// Options configures a lab.
type Options struct {
	// Dir is the lab directory; DefaultDir when empty.
	Dir string
	// Nodes is the number of redis hosts, node1..nodeN; DefaultNodes when zero.
	Nodes int
	// LDAP adds the host "gluu" running slapd.
	LDAP bool
	// LDAPServer runs the directory; nil means the project's ldapserver package.
	LDAPServer LDAPServer
	// Log receives one line per step; nil discards them.
	Log io.Writer
	// SkipInstall makes Up fail instead of installing missing Debian packages.
	SkipInstall bool

	// owner is the pid of the process whose lab this is (test labs); 0 for CLI labs, which
	// outlive the process that made them.
	owner int
}

// Host is one lab host as tests and the CLI see it.
type Host struct {
	// Name is the host's name, which is also its hostname.
	Name string
	// Address is the host's IPv4 address on the lab bridge.
	Address string
}

// Lab is a running lab. Its methods are safe for concurrent use, also across processes that
// open the same directory: every change takes a file lock in the lab directory.
type Lab struct {
	dir  string
	log  io.Writer
	ldap LDAPServer

	mu sync.Mutex
	st state

	// boots waits for the boot processes this Lab started, so none is left unreaped.
	boots sync.WaitGroup
}

// state is what state.json holds: everything needed to find and tear down the lab.
type state struct {
	ID      string       `json:"id"`
	Dir     string       `json:"dir"`
	Subnet  string       `json:"subnet"`
	Gateway string       `json:"gateway"`
	Bridge  string       `json:"bridge"`
	Owner   int          `json:"owner,omitempty"`
	Hosts   []*hostState `json:"hosts"`
	LDAP    *LDAPInfo    `json:"ldap,omitempty"`
}

// hostState is one host in state.json.
type hostState struct {
	Name        string `json:"name"`
	Address     string `json:"address"`
	Netns       string `json:"netns"`
	Link        string `json:"link"`
	PID         int    `json:"pid,omitempty"`
	StartTime   uint64 `json:"start_time,omitempty"`
	Killed      bool   `json:"killed,omitempty"`
	Partitioned bool   `json:"partitioned,omitempty"`
	// Services are commands started in the background at every boot (slapd on the gluu host).
	Services [][]string `json:"services,omitempty"`
}

func (s *state) host(name string) (*hostState, error) {
	for _, h := range s.Hosts {
		if h.Name == name {
			return h, nil
		}
	}
	return nil, fmt.Errorf("no host %q in the lab", name)
}

// labID derives the lab id from the absolute lab directory; seq > 0 gives the alternatives
// used when the first id is taken by another lab.
func labID(dir string, seq int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s#%d", dir, seq))
	return hex.EncodeToString(sum[:3])
}

// Dir returns the absolute lab directory.
func (l *Lab) Dir() string { return l.dir }

// ID returns the lab id, the suffix of every kernel name the lab makes.
func (l *Lab) ID() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.ID
}

// InventoryPath returns the absolute path of inventory.hcl.
func (l *Lab) InventoryPath() string { return filepath.Join(l.dir, "inventory.hcl") }

// LDAPVarsPath returns the absolute path of ldap.vars.hcl (written only by labs with LDAP).
func (l *Lab) LDAPVarsPath() string { return filepath.Join(l.dir, "ldap.vars.hcl") }

// KeyPath returns the absolute path of the operator's private key (ed25519).
func (l *Lab) KeyPath() string { return filepath.Join(l.dir, "id_ed25519") }

// KnownHostsPath returns the absolute path of the known_hosts file with every host's key.
func (l *Lab) KnownHostsPath() string { return filepath.Join(l.dir, "known_hosts") }

// Hosts returns the lab's hosts: node1..nodeN, then gluu when the lab has LDAP.
func (l *Lab) Hosts() []Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Host, 0, len(l.st.Hosts))
	for _, h := range l.st.Hosts {
		out = append(out, Host{Name: h.Name, Address: h.Address})
	}
	return out
}

// Nodes returns the redis hosts, node1..nodeN.
func (l *Lab) Nodes() []Host {
	var out []Host
	for _, h := range l.Hosts() {
		if h.Name != LDAPHost {
			out = append(out, h)
		}
	}
	return out
}

// Host returns the host called name.
func (l *Lab) Host(name string) (Host, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, err := l.st.host(name)
	if err != nil {
		return Host{}, err
	}
	return Host{Name: h.Name, Address: h.Address}, nil
}

// LDAP returns the directory's connection details, or nil when the lab has no LDAP.
func (l *Lab) LDAP() *LDAPInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st.LDAP == nil {
		return nil
	}
	info := *l.st.LDAP
	return &info
}

// Open returns the lab in dir as state.json describes it, without changing anything.
func Open(dir string) (*Lab, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("lab directory %s: %w", dir, err)
	}
	st, err := loadState(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no lab in %s (run testenv up)", abs)
	}
	if err != nil {
		return nil, err
	}
	return &Lab{dir: abs, log: io.Discard, ldap: defaultLDAP{}, st: st}, nil
}

func statePath(dir string) string { return filepath.Join(dir, "state.json") }

func loadState(dir string) (state, error) {
	var st state
	b, err := os.ReadFile(statePath(dir))
	if err != nil {
		return st, fmt.Errorf("read lab state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("read lab state %s: %w", statePath(dir), err)
	}
	return st, nil
}

func saveState(dir string, st state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab state: %w", err)
	}
	return writeFileAtomic(statePath(dir), append(b, '\n'), 0o600)
}

// writeFileAtomic writes data to a temporary file beside path and renames it over path.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// fileLock is an exclusive flock on a file, held until unlock.
type fileLock struct{ f *os.File }

func lockFile(path string) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &fileLock{f: f}, nil
}

func (l *fileLock) unlock() {
	if l != nil {
		l.f.Close()
	}
}

// change runs fn on the lab's current state under the lab's locks and saves the result.
func (l *Lab) change(fn func(st *state) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	fl, err := lockFile(filepath.Join(l.dir, ".lock"))
	if err != nil {
		return err
	}
	defer fl.unlock()
	st, err := loadState(l.dir)
	if err != nil {
		return err
	}
	ferr := fn(&st)
	serr := saveState(l.dir, st)
	l.st = st
	return errors.Join(ferr, serr)
}

func (l *Lab) logf(format string, args ...any) {
	if l.log != nil {
		fmt.Fprintf(l.log, format+"\n", args...)
	}
}

// SetLog sends the lab's progress lines (one per step) to w.
func (l *Lab) SetLog(w io.Writer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.log = w
}
