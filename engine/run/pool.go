package run

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/config"
)

// Connector opens the connection to a host. The CLI uses SSH (engine/sshconn); tests may use fakes.
type Connector interface {
	Connect(ctx context.Context, h *config.Host) (engine.Conn, error)
}

// ConnectorFunc adapts a function to a Connector.
type ConnectorFunc func(ctx context.Context, h *config.Host) (engine.Conn, error)

// Connect implements Connector.
func (f ConnectorFunc) Connect(ctx context.Context, h *config.Host) (engine.Conn, error) {
	return f(ctx, h)
}

// Pool holds one connection per host for the whole run, made on first use. It implements
// engine.Hosts.
type Pool struct {
	pb        *config.Playbook
	connector Connector
	mu        sync.Mutex
	slots     map[string]*slot
}

type slot struct {
	once sync.Once
	conn engine.Conn
	err  error
}

// NewPool returns a pool that connects to pb's hosts with c. Close it when done.
func NewPool(pb *config.Playbook, c Connector) *Pool {
	return &Pool{pb: pb, connector: c, slots: map[string]*slot{}}
}

// Conn implements engine.Hosts.
func (p *Pool) Conn(ctx context.Context, name string) (engine.Conn, error) {
	h, ok := p.pb.Host(name)
	if !ok {
		return nil, fmt.Errorf("unknown host %q", name)
	}
	p.mu.Lock()
	s, ok := p.slots[name]
	if !ok {
		s = &slot{}
		p.slots[name] = s
	}
	p.mu.Unlock()
	s.once.Do(func() {
		s.conn, s.err = p.connector.Connect(ctx, h)
	})
	return s.conn, s.err
}

// Lookup implements engine.Hosts.
func (p *Pool) Lookup(name string) (engine.Host, bool) {
	h, ok := p.pb.Host(name)
	if !ok {
		return engine.Host{}, false
	}
	return engineHost(h), true
}

// Close closes every connection the pool made.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.slots {
		if c, ok := s.conn.(io.Closer); ok && s.conn != nil {
			c.Close()
		}
	}
}

func engineHost(h *config.Host) engine.Host {
	vars := map[string]string{}
	for k, v := range h.Vars {
		if v.Type().IsPrimitiveType() && v.IsKnown() && !v.IsNull() {
			if s, err := ctyString(v); err == nil {
				vars[k] = s
			}
		}
	}
	return engine.Host{Name: h.Name, Address: h.Address, Vars: vars}
}

var _ engine.Hosts = (*Pool)(nil)
