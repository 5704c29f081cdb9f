package load

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tcpProxy forwards TCP connections to a server: the server's bytes as
// they come, the client's at rate bytes a second (0: as they come). It
// plays the networks the SFTP tests need: dropAll cuts every connection;
// muteAll drops the client's later bytes of the connections open at the
// time; hold keeps them instead, delivered on release (even after the
// client closed, as a kernel sends what a closed socket still holds).
// Connections opened later are forwarded as usual.
type tcpProxy struct {
	ln       net.Listener
	rate     int
	released chan struct{}
	once     sync.Once

	mu    sync.Mutex
	conns []net.Conn
	links []*proxyLink
}

type proxyLink struct{ muted, held atomic.Bool }

func newTCPProxy(t testing.TB, target string, rate int) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, rate: rate, released: make(chan struct{})}
	t.Cleanup(func() {
		ln.Close()
		p.release()
		p.dropAll()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			l := &proxyLink{}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.links = append(p.links, l)
			p.mu.Unlock()
			go p.toServer(c, s, l)
			go func() { _, _ = copyConn(c, s) }()
		}
	}()
	return p
}

// toServer forwards the client's bytes as the link says.
func (p *tcpProxy) toServer(c, s net.Conn, l *proxyLink) {
	defer s.Close()
	buf := make([]byte, 4096)
	var kept []byte
	for {
		n, err := c.Read(buf)
		if n > 0 {
			switch {
			case l.held.Load():
				kept = append(kept, buf[:n]...)
			case l.muted.Load():
			default:
				if _, werr := s.Write(buf[:n]); werr != nil {
					return
				}
				if p.rate > 0 {
					time.Sleep(time.Duration(n) * time.Second / time.Duration(p.rate))
				}
			}
		}
		if err != nil {
			if len(kept) > 0 {
				<-p.released
				_, _ = s.Write(kept)
				time.Sleep(500 * time.Millisecond)
			}
			return
		}
	}
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

// dropAll closes every connection.
func (p *tcpProxy) dropAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// muteAll drops the client's later bytes of the connections open now.
func (p *tcpProxy) muteAll() { p.each(func(l *proxyLink) { l.muted.Store(true) }) }

// hold keeps the client's later bytes of the connections open now, until
// release.
func (p *tcpProxy) hold() { p.each(func(l *proxyLink) { l.held.Store(true) }) }

func (p *tcpProxy) release() { p.once.Do(func() { close(p.released) }) }

func (p *tcpProxy) each(fn func(*proxyLink)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.links {
		fn(l)
	}
}

// copyConn copies src to dst until either fails, then closes dst.
func copyConn(dst, src net.Conn) (int64, error) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err != nil {
			return n, err
		}
	}
}

// behindProxy is a session to the peer p through a tcpProxy at rate (0:
// as the bytes come), its configuration changed by mod, counting the
// connections it dials; it is closed with the test.
func behindProxy(t testing.TB, p *peer, rate int, mod func(*SFTPConfig)) (*tcpProxy, *SFTPSession, *atomic.Int32) {
	t.Helper()
	proxy := newTCPProxy(t, p.addr, rate)
	cfg := p.config()
	cfg.Addr = proxy.addr()
	cfg.KnownHostsFile = knownHostsWith(t, cfg.Addr, mustHostKey(t, p))
	if mod != nil {
		mod(&cfg)
	}
	dials := new(atomic.Int32)
	s := NewSFTPSession(cfg)
	s.Dial = func(ctx context.Context, cfg SFTPConfig) (*SFTP, error) { dials.Add(1); return DialSFTP(ctx, cfg) }
	t.Cleanup(func() { s.Close() })
	return proxy, s, dials
}
