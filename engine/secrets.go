package engine

import (
	"sort"
	"strings"
	"sync"
)

// Redacted is what a secret value is replaced with wherever it would be shown.
const Redacted = "(sensitive)"

// Secrets is the set of sensitive values of a run. Every string the engine shows (plan, diffs, logs,
// JSON) passes through Redact, and connections refuse command lines that contain a secret.
type Secrets struct {
	mu     sync.RWMutex
	values []string // longest first, so a secret that contains another is replaced whole
}

// NewSecrets returns an empty set.
func NewSecrets() *Secrets { return &Secrets{} }

// Add registers secret values. Empty strings are ignored.
func (s *Secrets) Add(values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		if v == "" {
			continue
		}
		dup := false
		for _, have := range s.values {
			if have == v {
				dup = true
				break
			}
		}
		if !dup {
			s.values = append(s.values, v)
		}
	}
	sort.Slice(s.values, func(i, j int) bool { return len(s.values[i]) > len(s.values[j]) })
}

// Redact replaces every registered secret in text with Redacted.
func (s *Secrets) Redact(text string) string {
	if s == nil {
		return text
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, v := range s.values {
		if strings.Contains(text, v) {
			text = strings.ReplaceAll(text, v, Redacted)
		}
	}
	return text
}

// Contains reports whether text contains any registered secret.
func (s *Secrets) Contains(text string) bool {
	if s == nil {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, v := range s.values {
		if strings.Contains(text, v) {
			return true
		}
	}
	return false
}
