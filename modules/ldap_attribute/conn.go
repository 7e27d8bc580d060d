package ldapattribute

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
)

// dialFunc opens a TCP connection to addr.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// endpoint is the parsed url.
type endpoint struct {
	tls  bool   // ldaps://
	host string // for TLS verification
	addr string // host:port
}

func parseURL(raw string) (endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return endpoint{}, fmt.Errorf("url: %w", err)
	}
	var e endpoint
	port := u.Port()
	switch u.Scheme {
	case "ldap":
		if port == "" {
			port = "389"
		}
	case "ldaps":
		e.tls = true
		if port == "" {
			port = "636"
		}
	default:
		return endpoint{}, fmt.Errorf("url: scheme %q is not ldap or ldaps", u.Scheme)
	}
	if u.Hostname() == "" {
		return endpoint{}, fmt.Errorf("url: %q has no host", raw)
	}
	if u.Path != "" && u.Path != "/" {
		return endpoint{}, fmt.Errorf("url: %q has a path; put the entry in dn or search", raw)
	}
	e.host = u.Hostname()
	e.addr = net.JoinHostPort(e.host, port)
	return e, nil
}

// viaHost returns the inventory host whose SSH connection carries the LDAP connection: "" for a
// direct connection, the target's own host for via_ssh = true, or the named host.
func viaHost(v cty.Value, self string) (string, error) {
	if v.IsNull() {
		return "", nil
	}
	if !v.IsKnown() {
		return "", errors.New("via_ssh: not known yet")
	}
	v, _ = v.Unmark()
	switch v.Type() {
	case cty.Bool:
		if v.True() {
			return self, nil
		}
		return "", nil
	case cty.String:
		return v.AsString(), nil
	}
	return "", fmt.Errorf("via_ssh: must be true, false or a host name, not %s", v.Type().FriendlyName())
}

// dialer returns how to reach the LDAP port: directly from this machine, or through the SSH
// connection of an inventory host (an SSH direct-tcpip channel that starts at that host).
func (m *LDAPAttribute) dialer(ctx context.Context, t *engine.Target) (dialFunc, string, error) {
	host, err := viaHost(m.ViaSSH, t.Host().Name)
	if err != nil {
		return nil, "", err
	}
	switch {
	case host == "":
		d := &net.Dialer{}
		return d.DialContext, "", nil
	case host == t.Host().Name && t.Conn() != nil:
		return t.Conn().DialContext, host, nil
	case t.Hosts() == nil:
		return nil, "", fmt.Errorf("via_ssh: no connection to host %q", host)
	}
	c, err := t.Hosts().Conn(ctx, host)
	if err != nil {
		return nil, "", fmt.Errorf("via_ssh: connect to %s: %w", host, err)
	}
	return c.DialContext, host, nil
}

func (m *LDAPAttribute) tlsConfig(t *engine.Target, host string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if m.InsecureSkipVerify {
		cfg.InsecureSkipVerify = true
		return cfg, nil
	}
	if m.CAFile != "" {
		pem, err := os.ReadFile(t.Path(m.CAFile))
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file: no PEM certificate in %s", t.Path(m.CAFile))
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// connect opens the LDAP connection (TLS as configured) over dial and binds.
func (m *LDAPAttribute) connect(ctx context.Context, t *engine.Target, dial dialFunc, password string) (*ldap.Conn, error) {
	ep, err := parseURL(m.URL)
	if err != nil {
		return nil, err
	}
	timeout := m.timeout()
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := dial(dctx, "tcp", ep.addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", ep.addr, err)
	}
	var tlsCfg *tls.Config
	if ep.tls || m.StartTLS {
		if tlsCfg, err = m.tlsConfig(t, ep.host); err != nil {
			raw.Close()
			return nil, err
		}
	}
	if ep.tls {
		tc := tls.Client(raw, tlsCfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", ep.addr, err)
		}
		raw = tc
	}
	// go-ldap dials only with net.Dialer-like dialers; NewConn + Start wraps a connection we opened
	// ourselves (here possibly an SSH channel).
	c := ldap.NewConn(raw, ep.tls)
	c.Start()
	c.SetTimeout(timeout)
	if m.StartTLS {
		if err := c.StartTLS(tlsCfg); err != nil {
			c.Close()
			return nil, fmt.Errorf("StartTLS with %s: %w", ep.addr, err)
		}
	}
	if err := c.Bind(m.BindDN, password); err != nil {
		c.Close()
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return nil, fmt.Errorf("bind as %q to %s: wrong bind_dn or password: %w", m.BindDN, m.URL, err)
		}
		return nil, fmt.Errorf("bind as %q to %s: %w", m.BindDN, m.URL, err)
	}
	return c, nil
}

func (m *LDAPAttribute) timeout() time.Duration {
	if d, err := time.ParseDuration(m.Timeout); err == nil && d > 0 {
		return d
	}
	return 30 * time.Second
}
