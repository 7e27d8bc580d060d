package engine

import (
	"errors"
	"testing"
	"time"
)

func TestMemo(t *testing.T) {
	reads := 0
	read := func(v string) func() (any, error) {
		return func() (any, error) { reads++; return v, nil }
	}
	m := NewMemo()
	if v, _ := m.Load("k", time.Minute, read("first")); v != "first" || reads != 1 {
		t.Fatalf("first load: %v after %d reads", v, reads)
	}
	if v, _ := m.Load("k", time.Minute, read("second")); v != "first" || reads != 1 {
		t.Fatalf("second load should share the first read: %v after %d reads", v, reads)
	}
	if v, _ := m.Load("other", time.Minute, read("other")); v != "other" || reads != 2 {
		t.Fatalf("another key: %v after %d reads", v, reads)
	}
	if v, _ := m.Load("k", 0, read("fresh")); v != "fresh" || reads != 3 {
		t.Fatalf("an entry older than maxAge must be read again: %v after %d reads", v, reads)
	}
	if _, err := m.Load("e", time.Minute, func() (any, error) { reads++; return nil, errors.New("boom") }); err == nil {
		t.Fatal("the read's error was lost")
	}
	if v, _ := m.Load("e", time.Minute, read("after error")); v != "after error" {
		t.Fatalf("a failed read must not be stored: %v", v)
	}
	m.Disable()
	if v, _ := m.Load("k", time.Minute, read("disabled")); v != "disabled" {
		t.Fatalf("a disabled memo must read: %v", v)
	}
	if v, _ := m.Load("k", time.Minute, read("again")); v != "again" {
		t.Fatalf("a disabled memo must not store: %v", v)
	}
	// disabled while the read ran: the value is not stored
	m2 := NewMemo()
	_, _ = m2.Load("k", time.Minute, func() (any, error) { m2.Disable(); return "stale", nil })
	if v, _ := m2.Load("k", time.Minute, read("fresh")); v != "fresh" {
		t.Fatalf("a value read across a change was stored: %v", v)
	}
	var nilMemo *Memo
	if v, _ := nilMemo.Load("k", time.Minute, read("nil")); v != "nil" {
		t.Fatalf("nil memo: %v", v)
	}
	nilMemo.Disable()
}
