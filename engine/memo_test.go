package engine

import (
	"context"
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
	m.Changed()
	if v, _ := m.Load("k", time.Minute, read("after the change")); v != "after the change" {
		t.Fatalf("a change must drop what was stored: %v", v)
	}
	if v, _ := m.Load("k", time.Minute, read("again")); v != "after the change" {
		t.Fatalf("what was read after the last change must be shared: %v", v)
	}
	// changed while the read ran: the value is not stored
	m2 := NewMemo()
	_, _ = m2.Load("k", time.Minute, func() (any, error) { m2.Changed(); return "stale", nil })
	if v, _ := m2.Load("k", time.Minute, read("fresh")); v != "fresh" {
		t.Fatalf("a value read across a change was stored: %v", v)
	}
	var nilMemo *Memo
	if v, _ := nilMemo.Load("k", time.Minute, read("nil")); v != "nil" {
		t.Fatalf("nil memo: %v", v)
	}
	nilMemo.Changed()
	nilMemo.Put("k", "v", nilMemo.Mark())
}

// TestMemoPut: a value read after a mark is stored with it unless something changed since; its
// age counts from the mark.
func TestMemoPut(t *testing.T) {
	m := NewMemo()
	mark := m.Mark()
	m.Put("k", "settled", mark)
	if v, _ := m.Load("k", time.Minute, func() (any, error) { return "read", nil }); v != "settled" {
		t.Fatalf("Put value not shared: %v", v)
	}
	mark = m.Mark()
	m.Changed()
	m.Put("k2", "across a change", mark)
	if v, _ := m.Load("k2", time.Minute, func() (any, error) { return "read", nil }); v != "read" {
		t.Fatalf("a value read across a change was stored: %v", v)
	}
	old := MemoMark{changes: m.Mark().changes, at: time.Now().Add(-time.Hour)}
	m.Put("k3", "old", old)
	if v, _ := m.Load("k3", time.Minute, func() (any, error) { return "read", nil }); v != "read" {
		t.Fatalf("a value older than maxAge was shared: %v", v)
	}
}

// TestChangeDropsMemo: Target.Change drops what was shared before and what was read while its
// change was being made; a plan's Change does neither.
func TestChangeDropsMemo(t *testing.T) {
	m := NewMemo()
	read := func(v string) func() (any, error) { return func() (any, error) { return v, nil } }
	tg := NewTarget(TargetOptions{Host: Host{Name: "h"}, Task: "t", Memo: m, BeforeChange: func(Change) { m.Changed() }})
	_, _ = m.Load("before", time.Minute, read("before"))
	err := tg.Change(context.Background(), Change{Summary: "x"}, func(context.Context) error {
		_, _ = m.Load("during", time.Minute, read("during"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"before", "during"} {
		if v, _ := m.Load(k, time.Minute, read("new")); v != "new" {
			t.Errorf("%s: %v still shared after the change", k, v)
		}
	}
	plan := NewTarget(TargetOptions{Host: Host{Name: "h"}, Task: "t", Memo: m, DryRun: true})
	_ = plan.Change(context.Background(), Change{Summary: "x"}, func(context.Context) error { return nil })
	if v, _ := m.Load("before", time.Minute, read("newer")); v != "new" {
		t.Errorf("a plan's change dropped what was shared: %v", v)
	}
}
