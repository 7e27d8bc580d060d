package engine

import (
	"sync"
	"time"
)

// Memo lets the tasks of one run share what they read, as long as nothing has changed: several
// tasks that observe the same remote state (the three redis_cluster tasks of site.hcl read the
// same cluster) read it once. The engine gives every Target of a run the same Memo and disables it
// for good right before the first change of the run, anywhere: from then on every Load reads.
// Plan never changes anything, so a plan shares its reads all through.
//
// Keys are chosen by modules; prefix them with the module's name. A value must not be modified
// after it was stored: every reader gets the same value.
type Memo struct {
	mu       sync.Mutex
	disabled bool
	entries  map[string]memoEntry
}

type memoEntry struct {
	v  any
	at time.Time
}

// NewMemo returns an empty, enabled Memo. Only the engine (and tests) create Memos.
func NewMemo() *Memo { return &Memo{entries: map[string]memoEntry{}} }

// Load returns the value stored under key when it is younger than maxAge, and otherwise calls read
// and stores what it returns (unless read failed, or the Memo was disabled while read ran). A nil
// Memo always reads.
func (m *Memo) Load(key string, maxAge time.Duration, read func() (any, error)) (any, error) {
	if m == nil {
		return read()
	}
	m.mu.Lock()
	if e, ok := m.entries[key]; ok && !m.disabled && time.Since(e.at) < maxAge {
		m.mu.Unlock()
		return e.v, nil
	}
	m.mu.Unlock()
	start := time.Now()
	v, err := read()
	if err != nil {
		return v, err
	}
	m.mu.Lock()
	if !m.disabled {
		m.entries[key] = memoEntry{v: v, at: start}
	}
	m.mu.Unlock()
	return v, nil
}

// Disable drops every stored value and makes every later Load read: something changed.
func (m *Memo) Disable() {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.disabled = true
	m.entries = nil
	m.mu.Unlock()
}
