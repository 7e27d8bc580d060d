package lock_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/lock"
	"github.com/runbook/runbook/engine/sshconn"
	"github.com/runbook/runbook/testenv"
)

// helperEnv names the variable that turns TestHolderProcess into a lock holder: its value is
// "address known_hosts key".
const helperEnv = "RUNBOOK_LOCK_HOLDER"

// dial opens an SSH connection to a lab host, as a run would.
func dial(t *testing.T, addr, knownHosts, key string) *sshconn.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := sshconn.Dial(ctx, sshconn.Config{Name: "node1", Address: addr, User: "root",
		PrivateKeys: []string{key}, KnownHosts: knownHosts}, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func labDial(t *testing.T, lab *testenv.Lab, host string) *sshconn.Client {
	h, err := lab.Host(host)
	if err != nil {
		t.Fatal(err)
	}
	return dial(t, h.Address, lab.KnownHostsPath(), lab.KeyPath())
}

// TestHolderProcess is not a test: run by TestLab with helperEnv set, it takes node1's lock,
// prints "locked" and holds it until it is killed.
func TestHolderProcess(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process of TestLab")
	}
	f := strings.Fields(spec)
	c := dial(t, f[0], f[1], f[2])
	release, err := lock.AcquireAll(context.Background(), map[string]engine.Conn{"node1": c},
		lock.Options{Holder: lock.Holder{Playbook: "helper.hcl"}})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	fmt.Println("locked")
	time.Sleep(time.Hour) // until killed
}

func TestLab(t *testing.T) {
	lab := testenv.Start(t, testenv.Options{Nodes: 2})
	ctx := context.Background()
	n1a, n1b, n2a := labDial(t, lab, "node1"), labDial(t, lab, "node1"), labDial(t, lab, "node2")

	t.Run("second run fails naming the holder; other hosts are free; release frees", func(t *testing.T) {
		relA, err := lock.AcquireAll(ctx, map[string]engine.Conn{"node1": n1a}, lock.Options{Holder: lock.Holder{Playbook: "a.hcl"}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = lock.AcquireAll(ctx, map[string]engine.Conn{"node1": n1b}, lock.Options{})
		var busy *lock.BusyError
		if !errors.As(err, &busy) {
			relA()
			t.Fatalf("second lock on node1: err = %v, want a BusyError", err)
		}
		want := fmt.Sprintf("node1: locked by another run: %s", busy.Holder)
		if busy.Holder.PID != os.Getpid() || busy.Holder.Playbook != "a.hcl" || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("err = %q, holder %+v; want pid %d and a.hcl", err, busy.Holder, os.Getpid())
		}
		// node2 shares /run with node1 in the lab, but its lock file has its own name
		relB, err := lock.AcquireAll(ctx, map[string]engine.Conn{"node2": n2a}, lock.Options{})
		if err != nil {
			t.Errorf("node2 while node1 is held: %v", err)
		} else {
			relB()
		}
		relA()
		relC, err := lock.AcquireAll(ctx, map[string]engine.Conn{"node1": n1b}, lock.Options{})
		if err != nil {
			t.Fatalf("after release: %v", err)
		}
		relC()
	})

	t.Run("a holder killed with SIGKILL releases the lock", func(t *testing.T) {
		h, _ := lab.Host("node1")
		cmd := exec.Command(os.Args[0], "-test.run=^TestHolderProcess$", "-test.v=false")
		cmd.Env = append(os.Environ(), helperEnv+"="+h.Address+" "+lab.KnownHostsPath()+" "+lab.KeyPath())
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Wait()
		defer cmd.Process.Kill()
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "locked\n" {
			t.Fatalf("holder said %q, %v", line, err)
		}
		_, err = lock.AcquireAll(ctx, map[string]engine.Conn{"node1": n1a}, lock.Options{})
		var busy *lock.BusyError
		if !errors.As(err, &busy) || busy.Holder.PID != cmd.Process.Pid || busy.Holder.Playbook != "helper.hcl" {
			t.Fatalf("err = %v, want node1 held by pid %d", err, cmd.Process.Pid)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var waits []string
		start := time.Now()
		rel, err := lock.AcquireAll(ctx, map[string]engine.Conn{"node1": n1a}, lock.Options{
			Timeout: 30 * time.Second, Retry: 100 * time.Millisecond,
			Waiting: func(host, msg string) { mu.Lock(); waits = append(waits, msg); mu.Unlock() },
		})
		if err != nil {
			t.Fatalf("taking over after the holder died: %v", err)
		}
		rel()
		t.Logf("taken over after %s; waiting lines: %q", time.Since(start).Round(time.Millisecond), waits)
		mu.Lock()
		defer mu.Unlock()
		for _, w := range waits {
			if !strings.HasPrefix(w, "waiting for the lock on node1 held by ") || !strings.Contains(w, "helper.hcl") {
				t.Errorf("waiting line %q does not name the dead holder", w)
			}
		}
	})

	t.Run("a holding process killed on the host is reported lost", func(t *testing.T) {
		lost := make(chan string, 1)
		rel, err := lock.AcquireAll(ctx, map[string]engine.Conn{"node2": n2a}, lock.Options{
			Lost: func(host string, err error) { lost <- host + ": " + err.Error() },
		})
		if err != nil {
			t.Fatal(err)
		}
		defer rel()
		if out, err := lab.Exec(ctx, "node2", "fuser -k -KILL /run/runbook/lock-node2"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		select {
		case msg := <-lost:
			t.Logf("lost: %s", msg)
		case <-time.After(20 * time.Second):
			t.Fatal("the lock's end was not reported")
		}
		rel2, err := lock.AcquireAll(ctx, map[string]engine.Conn{"node2": labDial(t, lab, "node2")}, lock.Options{})
		if err != nil {
			t.Fatalf("lock after its holder was killed: %v", err)
		}
		rel2()
	})
}
