//go:build !unix

package gpu

import (
	"net"
	"syscall"
)

// rawConn: raw reads are used on Unix only; elsewhere a connection is read with Read.
func rawConn(net.Conn) syscall.RawConn { return nil }

// fillRaw is not called when rawConn is nil.
func (c *engineConn) fillRaw(p []byte) (int, error) { return c.Conn.Read(p) }
