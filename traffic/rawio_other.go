//go:build !linux || race

package traffic

import "net"

// rawIO is Linux's only, and not built with the race detector (see
// rawio_linux.go): here the fast path reads and writes through net.Conn.
type rawIO struct{}

func newRawIO(net.Conn) *rawIO { return nil }

func (*rawIO) Read([]byte) (int, error)                 { panic("traffic: rawIO is not built here") }
func (*rawIO) Write([]byte) (int, error)                { panic("traffic: rawIO is not built here") }
func (*rawIO) WriteBuffers(*net.Buffers) (int64, error) { panic("traffic: rawIO is not built here") }
