package dag

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		edges [][2]string
		want  []string
	}{
		{"empty", nil, nil},
		{"chain", [][2]string{{"b", "a"}, {"c", "b"}}, nil},
		{"self", [][2]string{{"a", "a"}}, []string{"cycle: a → a"}},
		{"two", [][2]string{{"a", "b"}, {"b", "a"}}, []string{"cycle: a → b → a"}},
		{"three", [][2]string{{"a", "b"}, {"b", "c"}, {"c", "a"}, {"d", "a"}}, []string{"cycle: a → b → c → a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := New()
			for _, e := range tt.edges {
				g.Connect(e[0], e[1])
			}
			err := g.Validate()
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("cycles (-want +got):\n%s", diff)
			}
			if err != nil {
				var ce *CycleError
				if !errors.As(err, &ce) {
					t.Errorf("error %v is not a *CycleError", err)
				}
			}
		})
	}
}

func TestTopoOrder(t *testing.T) {
	g := New()
	g.Add("install")
	g.Add("config")
	g.Add("start")
	g.Connect("start", "config")
	g.Connect("config", "install")
	g.Add("unrelated")
	got := g.TopoOrder()
	want := []string{"install", "config", "start", "unrelated"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestWalkOrderAndParallelism(t *testing.T) {
	g := New()
	for i := 0; i < 10; i++ {
		g.Add(fmt.Sprintf("leaf%d", i))
		g.Connect("root", fmt.Sprintf("leaf%d", i))
	}
	var mu sync.Mutex
	var order []string
	var running, peak int32
	err := g.Walk(context.Background(), 3, func(ctx context.Context, name string) error {
		n := atomic.AddInt32(&running, 1)
		for {
			p := atomic.LoadInt32(&peak)
			if n <= p || atomic.CompareAndSwapInt32(&peak, p, n) {
				break
			}
		}
		mu.Lock()
		order = append(order, name)
		mu.Unlock()
		atomic.AddInt32(&running, -1)
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if order[len(order)-1] != "root" {
		t.Errorf("root ran before its dependencies: %v", order)
	}
	if len(order) != 11 {
		t.Errorf("ran %d nodes, want 11", len(order))
	}
	if peak > 3 {
		t.Errorf("peak parallelism %d > 3", peak)
	}
}

func TestWalkSkipsDependentsOfFailure(t *testing.T) {
	g := New()
	g.Connect("b", "a")
	g.Connect("c", "b")
	g.Add("d")
	var ran []string
	var mu sync.Mutex
	skipped := map[string]string{}
	err := g.Walk(context.Background(), 1, func(ctx context.Context, name string) error {
		mu.Lock()
		ran = append(ran, name)
		mu.Unlock()
		if name == "a" {
			return errors.New("boom")
		}
		return nil
	}, func(name, cause string) { skipped[name] = cause })
	if err == nil || !strings.Contains(err.Error(), "a: boom") {
		t.Fatalf("err = %v, want a: boom", err)
	}
	sort.Strings(ran)
	if diff := cmp.Diff([]string{"a", "d"}, ran); diff != "" {
		t.Errorf("ran (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"b": "a", "c": "a"}, skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
}
