// Package netcut is a TCP proxy for tests that need the network to fail: it
// forwards connections to a target and can cut every connection (both
// directions closed, as a dead network or a server-side close looks to the
// client) or freeze them (stop carrying data in either direction, as a
// client that hangs looks to the server: it neither reads nor heartbeats).
package netcut

import (
	"net"
	"sync"
)

// Proxy forwards connections from its own loopback address to a target.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	cond   *sync.Cond
	pairs  map[*pair]struct{}
	frozen bool
	closed bool
	wg     sync.WaitGroup
}

type pair struct {
	client, server net.Conn
}

// Listen starts a proxy to target on 127.0.0.1 and a free port.
func Listen(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, pairs: map[*pair]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	return p, nil
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
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pr := &pair{client: c, server: s}
		p.mu.Lock()
		p.pairs[pr] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.copy(s, c)
		go p.copy(c, s)
	}
}

// copy carries data from src to dst, waiting while the proxy is frozen.
func (p *Proxy) copy(dst, src net.Conn) {
	defer p.wg.Done()
	defer dst.Close()
	buf := make([]byte, 16<<10)
	for {
		p.mu.Lock()
		for p.frozen && !p.closed {
			p.cond.Wait()
		}
		p.mu.Unlock()
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.frozen && !p.closed {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
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

// Thaw carries data again.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	p.frozen = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

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
