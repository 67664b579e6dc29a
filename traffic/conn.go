package traffic

import (
	"context"
	"io"
	"net"
	"net/netip"
)

// connQueue bounds the connections waiting for OnConnection.
const connQueue = 1024

// hookListener tells OnConnection of each accepted connection, through a
// queue, so that accepting never waits for the hook.
type hookListener struct {
	net.Listener
	p *Proxy
}

func (l *hookListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.p.noteConnection(c.RemoteAddr())
	}
	return c, err
}

func (p *Proxy) noteConnection(a net.Addr) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return
	}
	ap := ta.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	select {
	case p.conns <- ap:
	default:
		p.metrics.connDropped.Inc()
	}
}

// dispatchConnections calls OnConnection for each queued connection until
// ctx ends.
func (p *Proxy) dispatchConnections(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ap := <-p.conns:
			p.cfg.OnConnection(p.cfg.Component, ap)
		}
	}
}

// connIO is what reads and writes c: its rawIO where there is one, c
// itself otherwise.
func connIO(c net.Conn) io.ReadWriter {
	if rio := newRawIO(c); rio != nil {
		return rio
	}
	return c
}
