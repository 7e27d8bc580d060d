// Package testenv is the lab: hosts that are network namespaces on one machine, each with its own
// address on a bridge the lab creates, its own hostname, its own /proc and private redis folders,
// and its own sshd. Everything the project claims (install a Redis cluster, survive a lost server,
// replace a node) is shown against these hosts with real sshd, redis-server and slapd.
//
// A lab lives in a directory (DIR): the operator's key, known_hosts, inventory.hcl, the hosts'
// host keys, configs, logs and private folders, and state.json, which records the lab's id,
// subnet and the process that boots each host. Names of everything the lab makes in the kernel
// (bridge, veth links, network namespaces) start with "rbl" and the lab id, so Down finds
// leftovers even when state.json is gone. A machine-wide registry under /run/runbook-testenv
// gives concurrent labs distinct ids and subnets.
//
// Each host is booted as one process tree in new PID, mount and UTS namespaces inside the host's
// network namespace; sshd is PID 1 of that tree. Killing the host is one SIGKILL to that PID 1:
// the kernel then kills every process of the host at once, like a power loss. The host's
// /etc/redis, /var/lib/redis, /var/log/redis and /run/redis are folders of DIR/hosts/NAME/fs
// bind-mounted in its mount namespace; /run/redis is emptied at every boot, the others only by a
// revive with wipe.
//
// Integration tests use Start for a lab of their own, or Shared for one lab per package:
//
//	lab := testenv.Start(t, testenv.Options{Nodes: 3})
//	out, err := lab.Exec(ctx, "node1", "redis-cli -h "+lab.Hosts()[0].Address+" ping")
//	lab.Kill(ctx, "node1"); lab.Revive(ctx, "node1", true)
//
// Both skip the test where the lab cannot run (see Unsupported) and remove the lab at the end.
package testenv
