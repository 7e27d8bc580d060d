package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/stat's times: 100 on every Linux architecture Go runs
// on (the kernel scales its own HZ to it).
const clockTicks = 100

// busyTicks reads how long the machine's cores have been busy since boot, summed over all of
// them, in clock ticks: user, nice, system, irq and softirq time. Idle and I/O wait are not
// work; steal (time the hypervisor gave to someone else) and guest (already in user) are left out.
func busyTicks(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		if len(f) < 8 {
			return 0, fmt.Errorf("/proc/stat: cpu line has %d fields, want at least 8", len(f))
		}
		var sum uint64
		for _, i := range []int{1, 2, 3, 6, 7} { // user nice system (idle iowait) irq softirq
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/stat: cpu field %d: %w", i, err)
			}
			sum += v
		}
		return sum, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("/proc/stat: %w", err)
	}
	return 0, fmt.Errorf("/proc/stat: no cpu line")
}

// machineBusy is busyTicks of this machine; ok is false where /proc/stat cannot be read.
func machineBusy() (ticks uint64, ok bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	t, err := busyTicks(f)
	return t, err == nil
}

// cpuSeconds is the machine's busy CPU time between two machineBusy readings, in seconds.
func cpuSeconds(before, after uint64) float64 {
	if after < before {
		return 0
	}
	return float64(after-before) / clockTicks
}

// restingLoad measures how many cores the lab keeps busy when nothing runs on it (its
// redis-servers' cluster cron, sshd): busy CPU seconds per second over d. It is 0 where
// /proc/stat cannot be read.
func restingLoad(d time.Duration) float64 {
	before, ok := machineBusy()
	if !ok {
		return 0
	}
	start := time.Now()
	time.Sleep(d)
	after, _ := machineBusy()
	return cpuSeconds(before, after) / time.Since(start).Seconds()
}
