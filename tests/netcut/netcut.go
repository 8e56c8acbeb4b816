// Package netcut is a TCP proxy for tests that need the network to fail. It
// forwards connections to a target and breaks them the ways networks do:
//
//   - Cut closes every connection, both directions (a dead network or a
//     server-side close, as the client sees it);
//   - Freeze holds every byte until Thaw, on every connection, new ones too
//     (a client that hangs, as the server sees it: it neither reads nor
//     heartbeats);
//   - Drop makes the connections open now lose every byte, without closing
//     them (a path that died silently); new connections work;
//   - MuteServer makes the connections open now lose what the server sends
//     (the server hears the client, the client hears nothing);
//   - Refuse closes new connections at once (the server is unreachable).
//
// Retarget sends new connections to another server, as a load balancer
// moves clients off a dead node.
package netcut

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards connections from its own loopback address to a target.
type Proxy struct {
	ln       net.Listener
	target   string
	refused  chan struct{}
	accepted chan struct{}
	ended    chan struct{}

	mu     sync.Mutex
	cond   *sync.Cond
	pairs  map[*pair]struct{}
	frozen bool
	refuse bool
	closed bool
	wg     sync.WaitGroup
}

type pair struct {
	client, server net.Conn
	// drop loses both directions; mute loses what the server sends.
	drop, mute atomic.Bool
}

// Listen starts a proxy to target on 127.0.0.1 and a free port.
func Listen(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, pairs: map[*pair]struct{}{}, refused: make(chan struct{}, 1024),
		accepted: make(chan struct{}, 1024), ended: make(chan struct{}, 1024)}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Start is Listen for a test: it fails t on error and closes the proxy when
// the test ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := Listen(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Retarget forwards the connections accepted from now on to target; open
// ones stay where they are.
func (p *Proxy) Retarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

// Addr returns the proxy's address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse, target := p.refuse, p.target
		p.mu.Unlock()
		if refuse {
			c.Close()
			select {
			case p.refused <- struct{}{}:
			default:
			}
			continue
		}
		s, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			continue
		}
		pr := &pair{client: c, server: s}
		p.mu.Lock()
		p.pairs[pr] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.copy(pr, s, c, false)
		go p.copy(pr, c, s, true)
		select {
		case p.accepted <- struct{}{}:
		default:
		}
	}
}

// copy carries data from src to dst, waiting while the proxy is frozen and
// losing it while the pair drops it.
func (p *Proxy) copy(pr *pair, dst, src net.Conn, fromServer bool) {
	defer p.wg.Done()
	defer dst.Close()
	if !fromServer {
		defer func() {
			select {
			case p.ended <- struct{}{}:
			default:
			}
		}()
	}
	buf := make([]byte, 16<<10)
	for {
		p.waitThawed()
		n, err := src.Read(buf)
		if n > 0 {
			p.waitThawed()
			lost := pr.drop.Load() || (fromServer && pr.mute.Load())
			if !lost {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) waitThawed() {
	p.mu.Lock()
	for p.frozen && !p.closed {
		p.cond.Wait()
	}
	p.mu.Unlock()
}

// Cut closes every connection open now, in both directions.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pr := range p.pairs {
		pr.client.Close()
		pr.server.Close()
		delete(p.pairs, pr)
	}
}

// Freeze stops carrying data, in both directions, on every connection.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

// Thaw carries data again, the data held first.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	p.frozen = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Drop makes every connection open now lose what it carries, both ways.
func (p *Proxy) Drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pr := range p.pairs {
		pr.drop.Store(true)
	}
}

// MuteServer makes every connection open now lose what the server sends.
func (p *Proxy) MuteServer() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pr := range p.pairs {
		pr.mute.Store(true)
	}
}

// Refuse makes the proxy close new connections at once (or stop doing so).
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// Accepted receives once per connection carried (made while frozen, it
// carries nothing yet).
func (p *Proxy) Accepted() <-chan struct{} { return p.accepted }

// Ended receives once per connection carried that ended: the client's side
// was closed, or could no longer be read (Cut included).
func (p *Proxy) Ended() <-chan struct{} { return p.ended }

// Refused receives once per connection refused.
func (p *Proxy) Refused() <-chan struct{} { return p.refused }

// Close stops the proxy and cuts what it carries.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	p.Cut()
	p.wg.Wait()
	return err
}
