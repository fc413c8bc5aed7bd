//go:build linux

package gpu

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestEngineConnReadsBurstAtOnce: once a read filled the read buffer, the events that arrived
// together are taken from the socket in one read; the rest waits in the burst buffer, which is let
// go once read.
func TestEngineConnReadsBurstAtOnce(t *testing.T) {
	require := require.New(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(err)
	defer l.Close()
	sent := bytes.Repeat([]byte("data: {\"choices\":[]}\n\n"), 400) // 9 KiB
	go func() {
		s, err := l.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		_, _ = s.Write(sent)
	}()
	nc, err := net.Dial("tcp", l.Addr().String())
	require.NoError(err)
	c := newEngineConn(nc)
	defer c.Close()
	require.NotNil(c.raw, "a TCP connection is read with raw reads")
	waitReadable(t, nc.(*net.TCPConn), len(sent))

	p := make([]byte, connReadBuffer)
	n, err := c.Read(p)
	require.NoError(err)
	require.Equal(len(p), n)
	require.Zero(c.spill.Len(), "the first read goes straight into the caller's buffer")
	head := append([]byte(nil), p[:n]...)
	n, err = c.Read(p)
	require.NoError(err)
	require.Equal(len(p), n)
	require.Equal(len(sent)-len(head)-n, c.spill.Len(), "it filled the buffer: the next read took the rest of the burst")
	head = append(head, p[:n]...)
	got, err := io.ReadAll(c)
	require.NoError(err)
	require.Equal(sent, append(head, got...))
	require.Zero(c.spill.Len())
	require.EqualValues(len(sent), c.read)
}

// TestEngineConnRawReadDeadline: a raw read that waits still ends at the read deadline, as a
// timeout.
func TestEngineConnRawReadDeadline(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		s, err := l.Accept()
		if err == nil {
			defer s.Close()
			_, _ = s.Read(make([]byte, 1)) // until the test closes its end
		}
	}()
	nc, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	c := newEngineConn(nc)
	defer c.Close()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
	_, err = c.Read(make([]byte, 16))
	require.True(t, isTimeout(err), "%v", err)
	require.Zero(t, c.spill.Len())
}

// waitReadable waits until n bytes wait in c's receive queue.
func waitReadable(t *testing.T, c *net.TCPConn, n int) {
	t.Helper()
	raw, err := c.SyscallConn()
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		queued := 0
		require.NoError(t, raw.Control(func(fd uintptr) {
			queued, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		}))
		require.NoError(t, err)
		return queued >= n
	}, 10*time.Second, time.Millisecond)
}
