//go:build !linux

package traffic

import "net"

// rawIO is Linux's only (see rawio_linux.go): elsewhere the fast path reads
// and writes through net.Conn.
type rawIO struct{}

func newRawIO(net.Conn) *rawIO { return nil }

func (*rawIO) Read([]byte) (int, error)                 { panic("traffic: rawIO used off Linux") }
func (*rawIO) Write([]byte) (int, error)                { panic("traffic: rawIO used off Linux") }
func (*rawIO) WriteBuffers(*net.Buffers) (int64, error) { panic("traffic: rawIO used off Linux") }
