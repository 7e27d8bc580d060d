package redis_cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/runbook/runbook/engine"
)

// dialFunc opens a TCP connection to addr on behalf of the named inventory host.
type dialFunc func(ctx context.Context, host, addr string) (net.Conn, error)

// clients holds one plain go-redis client per declared instance for the length of a run. Each
// client keeps at most one open connection, so that every observation after the first reuses it.
type clients struct {
	insts []Instance
	// newClient makes the client of instance i.
	newClient func(i int) *redis.Client
	mu        sync.Mutex
	clients   []*redis.Client
}

// quietRedis silences go-redis's process-wide logger once: its pool prints failed dials to stderr,
// which would interleave with runbook's own output. The module reports every failure itself.
var quietRedis sync.Once

type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...interface{}) {}

// dialError marks an error of the module's dialer (the TCP connection or the TLS handshake), as
// opposed to one the server answered: the instance is then unreachable.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// connBufferSize is the read and the write buffer of each connection to an instance.
const connBufferSize = 4 << 10

func newClients(insts []Instance, dial dialFunc, password string, tlsCfg *tls.Config) *clients {
	quietRedis.Do(func() { redis.SetLogger(discardLogger{}) })
	c := &clients{insts: insts, clients: make([]*redis.Client, len(insts))}
	c.newClient = func(i int) *redis.Client {
		inst := insts[i]
		addr := net.JoinHostPort(inst.IP, strconv.Itoa(inst.Port))
		dialer := func(ctx context.Context, network, a string) (net.Conn, error) {
			conn, err := dial(ctx, inst.Host, a)
			if err != nil {
				return nil, &dialError{err}
			}
			if tlsCfg == nil {
				return conn, nil
			}
			cfg := tlsCfg.Clone()
			if cfg.ServerName == "" {
				cfg.ServerName = inst.IP
			}
			tc := tls.Client(conn, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				conn.Close()
				return nil, &dialError{fmt.Errorf("tls handshake: %w", err)}
			}
			return tc, nil
		}
		// One connection for commands and pipelines alike (no separate pipeline pool, which
		// would dial its own, and dial again in the main pool after a failed dial), kept for
		// the run; one dial attempt, so a down instance fails at once. PoolSize 2: go-redis
		// stops dialing after PoolSize failed dials, and dialFailed replaces the client after
		// one. MaxRetries -1: no command is sent twice (CLUSTER FAILOVER must not be).
		return redis.NewClient(&redis.Options{
			Addr:             addr,
			Dialer:           dialer,
			Password:         password,
			Protocol:         2,
			DialTimeout:      2 * time.Second,
			ReadTimeout:      5 * time.Second,
			WriteTimeout:     5 * time.Second,
			MaxRetries:       -1,
			PoolSize:         2,
			PipelinePoolSize: -1,
			MinIdleConns:     0,
			DisableIdentity:  true,
			DialerRetries:    1,
			// A run keeps a connection to every instance of the cluster (90 at 30 hosts): go-redis's
			// 32 KiB buffers each way would be most of runbook's memory. Replies are read in chunks
			// of this size whatever their length (CLUSTER NODES of 90 nodes is ~10 KiB).
			ReadBufferSize:  connBufferSize,
			WriteBufferSize: connBufferSize,
		})
	}
	for i := range insts {
		c.clients[i] = c.newClient(i)
	}
	return c
}

// client returns the client of instance i.
func (c *clients) client(i int) *redis.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clients[i]
}

// dialFailed replaces the client of instance i when err says its dial failed: go-redis stops
// dialing after as many failed dials as its pool holds connections and probes in the background
// until one succeeds, which would report an instance that is back as down for another second.
// A fresh client dials at the next command.
func (c *clients) dialFailed(i int, err error) {
	var de *dialError
	if !errors.As(err, &de) {
		return
	}
	c.mu.Lock()
	old := c.clients[i]
	c.clients[i] = c.newClient(i)
	c.mu.Unlock()
	old.Close()
}

func (c *clients) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.clients {
		cl.Close()
	}
}

// do runs one command on instance i.
func (c *clients) do(ctx context.Context, i int, args ...any) (any, error) {
	v, err := c.client(i).Do(ctx, args...).Result()
	if err != nil {
		c.dialFailed(i, err)
		return nil, fmt.Errorf("%s: %s: %w", c.insts[i].Name(), cmdName(args), err)
	}
	return v, nil
}

// doAgain is do for a command that may be sent twice (a read, CLUSTER FORGET): when the kept
// connection broke under it (the instance restarted, or the SSH connection its tunnel ran over
// dropped and is made again at the next dial), it sends the command once more on a new
// connection. A refusal, a failed dial or a timeout is returned as it is.
func (c *clients) doAgain(ctx context.Context, i int, args ...any) (any, error) {
	v, err := c.client(i).Do(ctx, args...).Result()
	if brokenConn(ctx, err) {
		v, err = c.client(i).Do(ctx, args...).Result()
	}
	if err != nil {
		c.dialFailed(i, err)
		return nil, fmt.Errorf("%s: %s: %w", c.insts[i].Name(), cmdName(args), err)
	}
	return v, nil
}

// brokenConn reports whether err is the connection's own failure (EOF, a reset, a broken pipe, a
// closed tunnel): not the server's refusal, not a failed dial (the instance is down) and not a
// timeout (it may be busy, and a second try would wait as long again), with ctx still live.
func brokenConn(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil || isTimeout(err) {
		return false
	}
	var rerr redis.Error
	var de *dialError
	return !errors.As(err, &rerr) && !errors.As(err, &de)
}

// text runs a command that reads (it may be sent twice: doAgain) and returns its text reply.
func (c *clients) text(ctx context.Context, i int, args ...any) (string, error) {
	v, err := c.doAgain(ctx, i, args...)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s: %s: unexpected reply %T", c.insts[i].Name(), cmdName(args), v)
	}
	return s, nil
}

func cmdName(args []any) string {
	var parts []string
	for i, a := range args {
		if i >= 2 {
			break
		}
		parts = append(parts, strings.ToUpper(fmt.Sprint(a)))
	}
	return strings.Join(parts, " ")
}

// observeCmds are the commands of one observation, in the order observe reads their replies.
var observeCmds = [][]any{
	{"INFO", "cluster"},
	{"DBSIZE"},
	{"INFO", "replication"},
	{"INFO", "server"},
	{"CLUSTER", "NODES"},
	{"CLUSTER", "INFO"},
}

// observe asks one instance for everything the planner (and the rolling restart) needs, in one
// pipeline on one connection: one round trip.
func (c *clients) observe(ctx context.Context, i int) Observation {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	o, stale := c.observeOnce(ctx, i)
	if stale {
		// The kept connection broke (the instance restarted or died since it was used): a
		// new one tells which.
		o, _ = c.observeOnce(ctx, i)
	}
	return o
}

// observeOnce sends the pipeline once. stale says the connection failed without being dialed
// just now, so that a second attempt on a new connection may answer.
func (c *clients) observeOnce(ctx context.Context, i int) (o Observation, stale bool) {
	name := c.insts[i].Name()
	cl := c.client(i)
	cmds, err := cl.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, args := range observeCmds {
			p.Do(ctx, args...)
		}
		return nil
	})
	var de *dialError
	if errors.As(err, &de) {
		c.dialFailed(i, err)
		o.Err = fmt.Errorf("%s: %w", name, de.err)
		return o, false
	}
	if brokenConn(ctx, err) && len(cmds) == len(observeCmds) {
		return Observation{Err: fmt.Errorf("%s: %s: %w", name, cmdName(observeCmds[0]), err)}, true
	}
	// reply returns the reply to observeCmds[k] as text (DBSIZE's number in decimal).
	reply := func(k int) (string, error) {
		what := name + ": " + cmdName(observeCmds[k])
		if k >= len(cmds) {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		v, cerr := cmds[k].(*redis.Cmd).Result()
		if cerr == nil && v == nil && err != nil {
			// The connection failed before the pipeline was sent (its AUTH was refused):
			// no command has a reply of its own.
			cerr = err
		}
		if cerr != nil {
			return "", fmt.Errorf("%s: %w", what, cerr)
		}
		switch v := v.(type) {
		case string:
			return v, nil
		case int64:
			return strconv.FormatInt(v, 10), nil
		}
		return "", fmt.Errorf("%s: unexpected reply %T", what, v)
	}
	info, err := reply(0)
	if err != nil {
		o.Err = authErr(name, err)
		return o, false
	}
	o.ClusterEnabled = ParseInfo(info)["cluster_enabled"] == "1"
	keys, err := reply(1)
	if err != nil {
		o.Err = err
		return o, false
	}
	o.Keys, _ = strconv.ParseInt(keys, 10, 64)
	repl, err := reply(2)
	if err != nil {
		o.Err = err
		return o, false
	}
	ri := ParseInfo(repl)
	o.Role = ri["role"]
	o.LinkUp = ri["master_link_status"] == "up"
	o.SyncInProgress = ri["master_sync_in_progress"] == "1"
	o.ReplID, o.ReplID2 = ri["master_replid"], ri["master_replid2"]
	o.MasterHost = ri["master_host"]
	o.MasterPort, _ = strconv.Atoi(ri["master_port"])
	off := ri["master_repl_offset"]
	if o.Role == "slave" {
		off = ri["slave_repl_offset"]
	}
	o.Offset, _ = strconv.ParseInt(off, 10, 64)
	server, err := reply(3)
	if err != nil {
		o.Err = err
		return o, false
	}
	o.Server = parseServer(ParseInfo(server))
	if !o.ClusterEnabled {
		// CLUSTER NODES and CLUSTER INFO were refused: cluster support is disabled.
		return o, false
	}
	nodes, err := reply(4)
	if err != nil {
		o.Err = err
		return o, false
	}
	if o.Nodes, err = ParseClusterNodes(nodes); err != nil {
		o.Err = fmt.Errorf("%s: %w", name, err)
		return o, false
	}
	ci, err := reply(5)
	if err != nil {
		o.Err = err
		return o, false
	}
	o.ClusterInfo = ParseInfo(ci)
	return o, false
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// authErr marks err as a refused password when the server says so (NOAUTH when the module sent no
// password, WRONGPASS or "invalid password" when it sent a wrong one, or a password sent to a
// server that has none), so that the operator reads the reason rather than "unreachable".
func authErr(name string, err error) error {
	msg := err.Error()
	for _, s := range []string{"NOAUTH", "WRONGPASS", "invalid password", "without any password configured"} {
		if strings.Contains(msg, s) {
			code := s
			if s == "without any password configured" {
				code = "a password was sent but the server has none"
			}
			return fmt.Errorf("%s: %w (%s): %s", name, errAuthFailed, code, authHint)
		}
	}
	return err
}

// sampleKeys returns the hash slots of up to n random keys of instance i: n RANDOMKEY, then a
// CLUSTER KEYSLOT per distinct key, each batch in one pipelined round trip. Nothing changes.
func (c *clients) sampleKeys(ctx context.Context, i, n int) *KeySample {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	name := c.insts[i].Name()
	cl := c.client(i)
	rk, err := cl.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := 0; k < n; k++ {
			p.RandomKey(ctx)
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return &KeySample{Err: fmt.Errorf("%s: RANDOMKEY: %w", name, err)}
	}
	seen := map[string]bool{}
	var keys []string
	for _, cmd := range rk {
		k, err := cmd.(*redis.StringCmd).Result()
		if err == redis.Nil {
			continue // no key
		}
		if err != nil {
			return &KeySample{Err: fmt.Errorf("%s: RANDOMKEY: %w", name, err)}
		}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	sample := &KeySample{}
	if len(keys) == 0 {
		return sample
	}
	ks, err := cl.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.ClusterKeySlot(ctx, k)
		}
		return nil
	})
	if err != nil {
		return &KeySample{Err: fmt.Errorf("%s: CLUSTER KEYSLOT: %w", name, err)}
	}
	for _, cmd := range ks {
		slot, err := cmd.(*redis.IntCmd).Result()
		if err != nil {
			return &KeySample{Err: fmt.Errorf("%s: CLUSTER KEYSLOT: %w", name, err)}
		}
		sample.Slots = append(sample.Slots, int(slot))
	}
	return sample
}

// topology observes every instance and analyses the answers (see analyze).
func (c *clients) topology(ctx context.Context) *Topology {
	return c.analyze(ctx, c.observeAll(ctx))
}

// analyze analyses the observations obs, which it owns. When a slot owner is down it also samples
// the keys of its live replicas (Observation.Sample), which the planner's choice of the replica
// to promote looks at.
func (c *clients) analyze(ctx context.Context, obs []Observation) *Topology {
	top := Analyze(c.insts, obs)
	idx := top.promotionSampled()
	if len(idx) == 0 {
		return top
	}
	samples := make([]*KeySample, len(c.insts))
	_ = parallel(idx, func(i int) error {
		samples[i] = c.sampleKeys(ctx, i, sampleSize)
		return nil
	})
	for _, i := range idx {
		top.Obs[i].Sample = samples[i]
	}
	return top
}

// observeAll observes every instance in parallel.
func (c *clients) observeAll(ctx context.Context) []Observation {
	obs := make([]Observation, len(c.insts))
	var wg sync.WaitGroup
	for i := range c.insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			obs[i] = c.observe(ctx, i)
		}()
	}
	wg.Wait()
	return obs
}

// parallel runs fn for each of idx concurrently and joins the errors.
func parallel(idx []int, fn func(i int) error) error {
	errs := make([]error, len(idx))
	var wg sync.WaitGroup
	for k, i := range idx {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = fn(i)
		}()
	}
	wg.Wait()
	return joinErrs(errs)
}

func joinErrs(errs []error) error {
	var msgs []string
	var first error
	for _, e := range errs {
		if e != nil {
			if first == nil {
				first = e
			}
			msgs = append(msgs, e.Error())
		}
	}
	if first == nil {
		return nil
	}
	if len(msgs) == 1 {
		return first
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

// loadTLS builds the client TLS configuration from the tls block.
func loadTLS(t *engine.Target, b *TLSBlock) (*tls.Config, error) {
	if b == nil {
		return nil, nil
	}
	cfg := &tls.Config{ServerName: b.ServerName, MinVersion: tls.VersionTLS12}
	if b.CAFile != "" {
		pem, err := os.ReadFile(t.Path(b.CAFile))
		if err != nil {
			return nil, fmt.Errorf("read tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s holds no certificate", b.CAFile)
		}
		cfg.RootCAs = pool
	}
	if b.CertFile != "" || b.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.Path(b.CertFile), t.Path(b.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("load tls cert_file and key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
