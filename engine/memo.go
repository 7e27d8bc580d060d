package engine

import (
	"sync"
	"time"
)

// Memo lets the tasks of one run share what they read, as long as nothing has changed since:
// several tasks that observe the same remote state (the three redis_cluster tasks of site.hcl
// read the same cluster) read it once. The engine gives every Target of a run the same Memo and
// calls Changed right before and right after every change of the run, anywhere: what was stored
// is dropped, and a value read while a change was being made is not stored. What is read after
// the last change (a cluster observed once it settled) serves the tasks that follow. Plan never
// changes anything, so a plan shares its reads all through.
//
// Keys are chosen by modules; prefix them with the module's name. A value must not be modified
// after it was stored: every reader gets the same value.
type Memo struct {
	mu      sync.Mutex
	changes int // how many times Changed was called
	entries map[string]memoEntry
}

type memoEntry struct {
	v  any
	at time.Time
}

// MemoMark is a Memo's state at one moment (Mark), for Put.
type MemoMark struct {
	changes int
	at      time.Time
}

// NewMemo returns an empty Memo. Only the engine (and tests) create Memos.
func NewMemo() *Memo { return &Memo{entries: map[string]memoEntry{}} }

// Load returns the value stored under key when it is younger than maxAge, and otherwise calls read
// and stores what it returns (unless read failed, or something changed while read ran). A nil
// Memo always reads.
func (m *Memo) Load(key string, maxAge time.Duration, read func() (any, error)) (any, error) {
	if m == nil {
		return read()
	}
	m.mu.Lock()
	if e, ok := m.entries[key]; ok && time.Since(e.at) < maxAge {
		m.mu.Unlock()
		return e.v, nil
	}
	m.mu.Unlock()
	mark := m.Mark()
	v, err := read()
	if err != nil {
		return v, err
	}
	m.Put(key, v, mark)
	return v, nil
}

// Mark returns the Memo's state now: a value read after it can be stored with Put.
func (m *Memo) Mark() MemoMark {
	if m == nil {
		return MemoMark{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return MemoMark{changes: m.changes, at: time.Now()}
}

// Put stores v, read after mark, under key (its age counts from mark), unless something changed
// since mark: v may then be older than the change.
func (m *Memo) Put(key string, v any, mark MemoMark) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.changes == mark.changes {
		m.entries[key] = memoEntry{v: v, at: mark.at}
	}
}

// Changed drops every stored value: something is about to change, and what was read may become
// untrue. Values being read meanwhile are not stored.
func (m *Memo) Changed() {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.changes++
	clear(m.entries)
	m.mu.Unlock()
}
