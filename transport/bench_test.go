package transport

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// BenchmarkHandshake measures a complete attested connection set-up between a proxy and a worker:
// QUIC + TLS 1.3 with both quotes verified (first: no cache, so every handshake runs the full
// go-tdx-guest verification on both sides; cached: verification results reused) and the Hello.
func BenchmarkHandshake(b *testing.B) {
	for name, ttl := range map[string]int{"first": -1, "cached": 0} {
		b.Run(name, func(b *testing.B) {
			require := require.New(b)
			mk := func(role attest.Role) Config {
				n := newNode(b, role)
				v, err := attest.NewVerifier(attest.VerifierConfig{
					Roots:  []attest.TrustedRoot{attesttest.Root(b).TrustedRoot()},
					Policy: attesttest.OpenPolicy(), CacheTTL: durationOf(ttl)})
				require.NoError(err)
				return Config{Identity: n.identity, Verifier: v, Log: zerolog.Nop(), PingInterval: -1}
			}
			l, err := Listen("127.0.0.1:0", mk(attest.RoleProxy))
			require.NoError(err)
			defer l.Close()
			ctx := context.Background()
			go func() {
				for {
					c, err := l.Accept(ctx)
					if err != nil {
						return
					}
					// The dialer closes; closing here at once could drop our Hello before it is sent.
					go func() { <-c.Done() }()
				}
			}()
			cfg := mk(attest.RoleWorker)
			b.ReportAllocs()
			for b.Loop() {
				c, err := Dial(ctx, l.Addr().String(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				_ = c.Close(0, "")
			}
		})
	}
}

func durationOf(ttl int) time.Duration { return time.Duration(ttl) }

// BenchmarkStreamFrames measures one 128-byte chunk frame sent and received over an attested stream.
func BenchmarkStreamFrames(b *testing.B) {
	require := require.New(b)
	sc, cc := pair(b, newNode(b, attest.RoleWorker), newNode(b, attest.RoleProxy))
	ctx := context.Background()
	cs, err := cc.OpenStream(ctx)
	require.NoError(err)
	require.NoError(cs.SendFrame(wire.TypeChunk, []byte("open")))
	ss, err := sc.AcceptStream(ctx)
	require.NoError(err)
	_, _, err = ss.RecvFrame()
	require.NoError(err)

	payload := bytes.Repeat([]byte("x"), 128)
	done := make(chan error, 1)
	n := 0
	go func() {
		for {
			if _, _, err := ss.RecvFrame(); err != nil {
				done <- nil
				return
			}
			n++
		}
	}()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if err := cs.SendFrame(wire.TypeChunk, payload); err != nil {
			b.Fatal(err)
		}
	}
	_ = cs.CloseSend()
	<-done
}
