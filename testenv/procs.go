package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one process as read from /proc.
type proc struct {
	PID     int
	Cmdline []string
}

// startTime returns the start time of pid (field 22 of /proc/PID/stat) and whether it is a live
// process (present and not a zombie).
func startTime(pid int) (uint64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name is in parentheses and may hold spaces; fields follow the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return 0, false
	}
	st, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, false
	}
	return st, fields[0] != "Z" && fields[0] != "X"
}

// running reports whether the process pid that started at start is still alive.
func running(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, live := startTime(pid)
	return live && st == start
}

// nsInode returns the inode of a namespace file (/run/netns/NAME or /proc/PID/ns/net).
func nsInode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return st.Ino, nil
}

// procsWhere lists live processes for which match returns true; match gets the pid.
func procsWhere(match func(pid int) bool) []proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if !match(pid) {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue // gone, or a kernel thread or zombie
		}
		out = append(out, proc{PID: pid, Cmdline: strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")})
	}
	return out
}

// procsInNetns lists the live processes whose network namespace is the named one.
func procsInNetns(netns string) []proc {
	ino, err := nsInode(filepath.Join("/run/netns", netns))
	if err != nil {
		return nil
	}
	return procsWhere(func(pid int) bool {
		got, err := nsInode(fmt.Sprintf("/proc/%d/ns/net", pid))
		return err == nil && got == ino
	})
}

// killAll SIGKILLs the processes list returns, again and again until it returns none (a process
// may fork while it is being killed), and waits until they are dead.
func killAll(ctx context.Context, list func() []proc) error {
	for {
		ps := list()
		if len(ps) == 0 {
			return nil
		}
		for _, p := range ps {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
		}
		if err := waitFor(ctx, 5*time.Second, func() bool {
			for _, p := range ps {
				if _, live := startTime(p.PID); live {
					return false
				}
			}
			return true
		}); err != nil {
			return fmt.Errorf("kill processes: %w", err)
		}
	}
}

// waitFor polls cond until it holds, ctx ends or timeout passes; the poll interval starts at
// 1 ms and grows to 20 ms.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	interval := time.Millisecond
	for {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
		if interval < 20*time.Millisecond {
			interval *= 2
		}
	}
}
