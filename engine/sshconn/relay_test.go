package sshconn

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"
)

// socketPair returns the two ends of a unix stream socket pair (buffered, unlike net.Pipe, on
// which both ends of an SSH handshake would wait on each other's first write).
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	return conns[0], conns[1]
}

// pipeServer returns the two ends of an SSH connection over a socket pair: the server's
// connection with its channels, and a client of it. Neither side authenticates.
func pipeServer(t *testing.T) (*ssh.ServerConn, <-chan ssh.NewChannel, *ssh.Client) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	scfg := &ssh.ServerConfig{NoClientAuth: true}
	scfg.AddHostKey(signer)
	a, b := socketPair(t)
	type server struct {
		sc    *ssh.ServerConn
		chans <-chan ssh.NewChannel
		err   error
	}
	done := make(chan server, 1)
	go func() {
		sc, chans, reqs, err := ssh.NewServerConn(a, scfg)
		if err == nil {
			go ssh.DiscardRequests(reqs)
		}
		done <- server{sc, chans, err}
	}()
	cc, cchans, creqs, err := ssh.NewClientConn(b, "pipe", &ssh.ClientConfig{
		User: "test", HostKeyCallback: ssh.InsecureIgnoreHostKey(),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := <-done
	if s.err != nil {
		t.Fatal(s.err)
	}
	client := ssh.NewClient(cc, cchans, creqs)
	t.Cleanup(func() { client.Close(); s.sc.Close() })
	return s.sc, s.chans, client
}

// quickHost serves session channels as a host whose commands end at once: it answers exec and,
// right behind the answer, sends the exit status, the end of output and the close, the order in
// which sshd sends them for a command that has nothing to say.
func quickHost(chans <-chan ssh.NewChannel) {
	for nc := range chans {
		ch, reqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go func() {
			for r := range reqs {
				if r.Type != "exec" {
					r.Reply(false, nil)
					continue
				}
				r.Reply(true, nil)
				ch.SendRequest("exit-status", false, []byte{0, 0, 0, 0})
				ch.CloseWrite()
				ch.Close()
			}
		}()
	}
}

// TestRelayKeepsTheOrder: the keeper relays a host's answer to exec before what the host sent
// after it. A command that ends at once has its answer, exit status and close come in one burst;
// were the close relayed first, the run would see its session end before the command started,
// although the command ran.
func TestRelayKeepsTheOrder(t *testing.T) {
	_, hostChans, toHost := pipeServer(t)
	go quickHost(hostChans)
	up := &conn{ssh: toHost, dead: make(chan struct{})}
	keeper := &Client{sem: make(chan struct{}, DefaultMaxSessions)}
	_, runChans, run := pipeServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for nc := range runChans {
			go relayChannel(ctx, keeper, up, nc)
		}
	}()

	const commands, atOnce = 400, DefaultMaxSessions
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	var first error
	next := make(chan int)
	for w := 0; w < atOnce; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				s, err := run.NewSession()
				if err == nil {
					err = s.Run("true")
					s.Close()
				}
				if err != nil {
					mu.Lock()
					failed++
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < commands; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if failed > 0 {
		t.Fatalf("%d of %d commands failed through the relay, the first: %v", failed, commands, first)
	}
}
