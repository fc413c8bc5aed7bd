//go:build unix

package gpu

import (
	"io"
	"net"
	"os"
	"syscall"
)

// rawConn is the raw connection of a plain TCP connection, which the burst reads use; nil for any
// other.
func rawConn(nc net.Conn) syscall.RawConn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// fillRaw reads what the socket holds into the burst buffer with one syscall, waiting for data
// (and honouring the read deadline) with no buffer borrowed.
func (c *engineConn) fillRaw(p []byte) (int, error) {
	var (
		n   int
		err error
	)
	// The callback runs whenever the socket may be readable; returning false waits for it.
	werr := c.raw.Read(func(fd uintptr) bool {
		n, err = c.spill.Fill(p, func(b []byte) (int, error) {
			for {
				n, err := syscall.Read(int(fd), b)
				if err != syscall.EINTR {
					return n, err
				}
			}
		})
		return err != syscall.EAGAIN
	})
	switch {
	case werr != nil: // closed, or past the read deadline
		return 0, werr
	case err != nil:
		return n, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", err)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}
