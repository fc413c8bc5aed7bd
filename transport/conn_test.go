package transport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
	"github.com/cocoon-network/cocoon/attest/ratls"
	"github.com/cocoon-network/cocoon/transport/wire"
)

func TestMutualHandshake(t *testing.T) {
	testCases := map[string]struct {
		server, client attest.Role
		clientQuoted   bool
		v5             bool // both on TDX 1.5 platforms: v5 quotes
	}{
		"worker dials proxy":            {server: attest.RoleProxy, client: attest.RoleWorker, clientQuoted: true},
		"client dials proxy":            {server: attest.RoleProxy, client: attest.RoleClient},
		"worker dials proxy, v5 quotes": {server: attest.RoleProxy, client: attest.RoleWorker, clientQuoted: true, v5: true},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			server, client := newNode(t, tc.server), newNode(t, tc.client)
			if tc.v5 {
				server, client = newNodeV5(t, tc.server), newNodeV5(t, tc.client)
			}
			sc, cc := pair(t, server, client)

			assert.Equal(tc.client, sc.Peer().Claims.Role)
			assert.Equal(tc.clientQuoted, sc.Peer().Quoted)
			assert.Equal(client.identity.Certificate().Leaf.PublicKey, ed25519Key(sc.Peer().Claims.PublicKey))
			if tc.clientQuoted {
				assert.True(sc.Peer().Simulated)
				want := attesttest.Measurements(tc.client)
				assert.Equal(want.ImageHash(), sc.Peer().ImageHash)
				assert.Equal("simulated", sc.Peer().Label())
			} else {
				assert.Equal("unattested", sc.Peer().Label())
			}
			if tc.v5 {
				c := client.identity.Certificate()
				rc, err := ratls.ParseCertificate(c.Certificate, c.Leaf.NotBefore.Add(time.Minute), 0)
				require.NoError(t, err)
				q, err := attest.ParseQuote(rc.Quote)
				require.NoError(t, err)
				assert.EqualValues(5, q.Version)
			}
			assert.Equal(tc.server, cc.Peer().Claims.Role)
			assert.True(cc.Peer().Quoted)
			assert.True(cc.Peer().Simulated)
			want := attesttest.Measurements(tc.server)
			assert.Equal(want.ImageHash(), cc.Peer().ImageHash)

			rtt, err := cc.Ping(context.Background())
			assert.NoError(err)
			assert.Positive(rtt)
		})
	}
}

// badCert builds the certificates a hostile or broken peer might present.
type badCert func(t *testing.T, role attest.Role) tls.Certificate

func quotedCert(t *testing.T, role attest.Role, m attest.Measurements, now time.Time, validity time.Duration) tls.Certificate {
	c, err := ratls.NewCertificate(ratls.CertOptions{Key: newKey(t), Claims: attesttest.Claims(role),
		Quoter: attesttest.Quoter(t, m), Now: now, Validity: validity})
	require.NoError(t, err)
	return c
}

// rebuild re-signs a certificate with the given extensions replaced or added.
func rebuild(t *testing.T, c tls.Certificate, exts ...pkix.Extension) tls.Certificate {
	leaf := c.Leaf
	var out []pkix.Extension
	for _, e := range leaf.Extensions {
		if e.Id.Equal(ratls.OIDQuote) || e.Id.Equal(ratls.OIDClaims) {
			out = append(out, e)
		}
	}
	for _, x := range exts {
		replaced := false
		for i := range out {
			if out[i].Id.Equal(x.Id) {
				out[i], replaced = x, true
			}
		}
		if !replaced {
			out = append(out, x)
		}
	}
	key := c.PrivateKey.(ed25519Private)
	nc, err := ratls.SelfSign(key, "rebuilt", time.Now(), time.Hour, out)
	require.NoError(t, err)
	return nc
}

func extValue(c tls.Certificate, oid []int) []byte {
	for _, e := range c.Leaf.Extensions {
		if e.Id.Equal(oid) {
			return e.Value
		}
	}
	return nil
}

// handshakeRefusals are the certificates a node refuses. told marks the refusals by policy of
// evidence that verified: the handshake completes and the refused peer is told why
// (CodePolicyRefused); the others fail the handshake with a TLS alert.
func handshakeRefusals() map[string]struct {
	make    badCert
	policy  func(*attest.Policy)
	wantErr error
	told    bool
} {
	return map[string]struct {
		make    badCert
		policy  func(*attest.Policy)
		wantErr error
		told    bool
	}{
		"quote bound to another key": {
			make: func(t *testing.T, role attest.Role) tls.Certificate {
				m := attesttest.Measurements(role)
				a := quotedCert(t, role, m, time.Now(), time.Hour)
				b := quotedCert(t, role, m, time.Now(), time.Hour)
				// a's key with b's claims and quote: b's quote is genuine but vouches for b's key.
				return rebuild(t, a,
					pkix.Extension{Id: ratls.OIDQuote, Critical: true, Value: extValue(b, ratls.OIDQuote)},
					pkix.Extension{Id: ratls.OIDClaims, Critical: true, Value: extValue(b, ratls.OIDClaims)})
			},
			wantErr: attest.ErrKeyMismatch,
		},
		"quote of other claims": {
			make: func(t *testing.T, role attest.Role) tls.Certificate {
				m := attesttest.Measurements(role)
				a := quotedCert(t, role, m, time.Now(), time.Hour)
				b := quotedCert(t, role, m, time.Now(), time.Hour)
				return rebuild(t, a, pkix.Extension{Id: ratls.OIDQuote, Critical: true, Value: extValue(b, ratls.OIDQuote)})
			},
			wantErr: attest.ErrReportDataMismatch,
		},
		"flipped byte in quote body": {
			make: func(t *testing.T, role attest.Role) tls.Certificate {
				c := quotedCert(t, role, attesttest.Measurements(role), time.Now(), time.Hour)
				q := append([]byte(nil), extValue(c, ratls.OIDQuote)...)
				q[200] ^= 0x01 // inside MRTD
				return rebuild(t, c, pkix.Extension{Id: ratls.OIDQuote, Critical: true, Value: q})
			},
			wantErr: attest.ErrQuoteSignature,
		},
		"image outside policy": {
			make: func(t *testing.T, role attest.Role) tls.Certificate {
				return quotedCert(t, role, attesttest.Measurements(role), time.Now(), time.Hour)
			},
			policy: func(p *attest.Policy) {
				for r, rp := range p.Roles {
					if rp.ImageHashes != nil {
						rp.ImageHashes = []string{strings.Repeat("11", 32)}
						p.Roles[r] = rp
					}
				}
			},
			wantErr: attest.ErrImageNotAllowed,
			told:    true,
		},
		"debug TD": {
			make: func(t *testing.T, role attest.Role) tls.Certificate {
				m := attesttest.Measurements(role)
				m.TDAttributes[0] |= 0x01
				return quotedCert(t, role, m, time.Now(), time.Hour)
			},
			wantErr: attest.ErrDebugTD,
			told:    true,
		},
		"simulated not allowed": {
			make: func(t *testing.T, role attest.Role) tls.Certificate {
				return quotedCert(t, role, attesttest.Measurements(role), time.Now(), time.Hour)
			},
			policy:  func(p *attest.Policy) { p.AllowSimulated = false },
			wantErr: attest.ErrSimulatedNotAllowed,
		},
		"expired certificate": {
			make: func(t *testing.T, role attest.Role) tls.Certificate {
				return quotedCert(t, role, attesttest.Measurements(role), time.Now().Add(-3*time.Hour), time.Hour)
			},
			wantErr: ratls.ErrCertExpired,
		},
		"unknown critical extension": {
			make: func(t *testing.T, role attest.Role) tls.Certificate {
				c := quotedCert(t, role, attesttest.Measurements(role), time.Now(), time.Hour)
				return rebuild(t, c, pkix.Extension{Id: []int{1, 3, 6, 1, 4, 1, 64447, 1, 99}, Critical: true, Value: []byte{5, 0}})
			},
			wantErr: ratls.ErrUnknownCriticalExt,
		},
		"non-Ed25519 key": {
			make: func(t *testing.T, role attest.Role) tls.Certificate {
				c := quotedCert(t, role, attesttest.Measurements(role), time.Now(), time.Hour)
				key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				require.NoError(t, err)
				tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Minute),
					NotAfter: time.Now().Add(time.Hour), Subject: pkix.Name{CommonName: "ecdsa"},
					ExtraExtensions: []pkix.Extension{
						{Id: ratls.OIDQuote, Critical: true, Value: extValue(c, ratls.OIDQuote)},
						{Id: ratls.OIDClaims, Critical: true, Value: extValue(c, ratls.OIDClaims)}}}
				der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
				require.NoError(t, err)
				return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
			},
			wantErr: ratls.ErrKeyType,
		},
		"chain instead of self-signed": {
			make: func(t *testing.T, role attest.Role) tls.Certificate {
				caKey := newKey(t)
				ca := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "ca"},
					NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
					IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
				caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
				require.NoError(t, err)
				caCert, err := x509.ParseCertificate(caDER)
				require.NoError(t, err)
				c := quotedCert(t, role, attesttest.Measurements(role), time.Now(), time.Hour)
				leaf := &x509.Certificate{SerialNumber: big.NewInt(8), Subject: pkix.Name{CommonName: "leaf"},
					NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
					ExtraExtensions: []pkix.Extension{
						{Id: ratls.OIDQuote, Critical: true, Value: extValue(c, ratls.OIDQuote)},
						{Id: ratls.OIDClaims, Critical: true, Value: extValue(c, ratls.OIDClaims)}}}
				key := c.PrivateKey.(ed25519Private)
				leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, key.Public(), caKey)
				require.NoError(t, err)
				return tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: key}
			},
			wantErr: ratls.ErrNotSelfSigned,
		},
	}
}

// TestHandshakeRefusedByListener: the dialer presents a bad certificate; the listener refuses it
// with the named error, accepts no connection and reads no application data. A cryptographic
// failure fails the handshake (TLS alert, CRYPTO_ERROR at the dialer); a refusal by policy of
// evidence that verified completes it only to close the connection with CodePolicyRefused and the
// reason, which Dial returns as a *RefusedError.
func TestHandshakeRefusedByListener(t *testing.T) {
	for name, tc := range handshakeRefusals() {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			server := newNode(t, attest.RoleProxy)
			if tc.policy != nil {
				tc.policy(&server.policy)
			}
			var rej rejections
			l := listen(t, server, WithRejectHook(rej.add))

			client := newNode(t, attest.RoleWorker)
			client.identity = fixedIdentity(attest.RoleWorker, tc.make(t, attest.RoleWorker))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := Dial(ctx, l.Addr().String(), client.config(t))
			require.Error(err)

			errs := rej.all()
			require.Len(errs, 1, "listener must refuse exactly once")
			assert.ErrorIs(errs[0], tc.wantErr)
			assert.Empty(l.accepted, "no connection may be accepted")
			var re *RefusedError
			if tc.told {
				require.ErrorAs(err, &re)
				assert.True(re.ByPeer)
				assert.Contains(re.Reason, tc.wantErr.Error())
				assert.NotErrorIs(err, ErrPeerRefused, "refused by the peer, not by us")
				return
			}
			assert.False(errors.As(err, &re), "a cryptographic failure is not explained: %v", err)
			var te *quic.TransportError
			require.ErrorAs(err, &te)
			assert.True(te.ErrorCode.IsCryptoError(), "TLS alert: %v", te)
		})
	}
}

// TestHandshakeRefusedByDialer: the listener presents a bad certificate; Dial fails with the named error.
func TestHandshakeRefusedByDialer(t *testing.T) {
	for name, tc := range handshakeRefusals() {
		t.Run(name, func(t *testing.T) {
			require := require.New(t)
			server := newNode(t, attest.RoleProxy)
			server.identity = fixedIdentity(attest.RoleProxy, tc.make(t, attest.RoleProxy))
			var rej rejections
			l := listen(t, server, WithRejectHook(rej.add))

			client := newNode(t, attest.RoleWorker)
			if tc.policy != nil {
				tc.policy(&client.policy)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := Dial(ctx, l.Addr().String(), client.config(t))
			require.ErrorIs(err, tc.wantErr)
			require.ErrorIs(err, ErrPeerRefused)
			require.Empty(rej.all(), "the listener had nothing to refuse")
			require.Empty(l.accepted)
			var re *RefusedError
			require.Equal(tc.told, errors.As(err, &re), "a RefusedError only for a refusal by policy: %v", err)
			if tc.told {
				assert.False(t, re.ByPeer)
				assert.Contains(t, re.Reason, tc.wantErr.Error())
			}
		})
	}
}

func TestRoleRules(t *testing.T) {
	testCases := map[string]struct {
		client  attest.Role
		policy  func(*attest.Policy)
		wantErr error
	}{
		"role absent from policy": {client: attest.RoleWorker, policy: func(p *attest.Policy) { delete(p.Roles, attest.RoleWorker) }, wantErr: attest.ErrRoleNotAllowed},
		"client without quote not allowed": {client: attest.RoleClient, policy: func(p *attest.Policy) {
			p.Roles[attest.RoleClient] = attest.RolePolicy{}
		}, wantErr: attest.ErrQuoteRequired},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			server := newNode(t, attest.RoleProxy)
			tc.policy(&server.policy)
			var rej rejections
			l := listen(t, server, WithRejectHook(rej.add))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := Dial(ctx, l.Addr().String(), newNode(t, tc.client).config(t))
			require.Error(t, err)
			require.Len(t, rej.all(), 1)
			assert.ErrorIs(t, rej.all()[0], tc.wantErr)
		})
	}

	t.Run("dialer expects another role", func(t *testing.T) {
		l := listen(t, newNode(t, attest.RoleWorker))
		cfg := newNode(t, attest.RoleWorker).config(t)
		cfg.PeerRoles = []attest.Role{attest.RoleProxy}
		_, err := Dial(context.Background(), l.Addr().String(), cfg)
		assert.ErrorIs(t, err, attest.ErrRoleMismatch)
	})
}

// echo serves every stream by sending back each message until the stream ends.
func echo(ctx context.Context, c *Conn) {
	for {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return
		}
		go func() {
			for {
				m, err := s.Recv()
				if err != nil {
					_ = s.CloseSend()
					return
				}
				if s.Send(m) != nil {
					return
				}
			}
		}()
	}
}

// TestThousandConcurrentStreams: more requests at once than the listener's stream limit all get
// their answer; those over the limit wait in OpenStream for a stream to end.
func TestThousandConcurrentStreams(t *testing.T) {
	sc, cc := pair(t, newNode(t, attest.RoleWorker), newNode(t, attest.RoleProxy))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go echo(ctx, sc)

	for _, err := range onStreams(ctx, cc, 1000, func(i int, s *Stream) error {
		msg := &wire.Error{Code: uint32(i), Message: "request"}
		if err := s.Send(msg); err != nil {
			return err
		}
		_ = s.CloseSend()
		got, err := s.Recv()
		if err != nil {
			return err
		}
		if got.(*wire.Error).GetCode() != uint32(i) {
			return errors.New("wrong echo")
		}
		if _, err := s.Recv(); !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	}) {
		require.NoError(t, err)
	}
}

func TestStreamCancelSeenByPeer(t *testing.T) {
	testCases := map[string]bool{"requester cancels": true, "server cancels": false}
	for name, requesterCancels := range testCases {
		t.Run(name, func(t *testing.T) {
			require := require.New(t)
			sc, cc := pair(t, newNode(t, attest.RoleWorker), newNode(t, attest.RoleProxy))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cs, err := cc.OpenStream(ctx)
			require.NoError(err)
			require.NoError(cs.Send(&wire.Ping{Nonce: 1}))
			ss, err := sc.AcceptStream(ctx)
			require.NoError(err)
			_, err = ss.Recv()
			require.NoError(err)

			canceller, other := cs, ss
			if !requesterCancels {
				canceller, other = ss, cs
			}
			seen := make(chan error, 1)
			go func() {
				_, err := other.Recv()
				seen <- err
			}()
			start := time.Now()
			canceller.Cancel(wire.CodeCancelled)
			select {
			case err := <-seen:
				code, ok := ErrorCode(err)
				require.True(ok, "error %v carries no code", err)
				require.Equal(wire.CodeCancelled, code)
				require.Less(time.Since(start), 100*time.Millisecond)
			case <-ctx.Done():
				t.Fatal("cancel not seen")
			}
			select {
			case <-other.Context().Done():
			case <-ctx.Done():
				t.Fatal("stream context not cancelled")
			}
		})
	}
}

func TestFrameTooLarge(t *testing.T) {
	require := require.New(t)
	scfg := newNode(t, attest.RoleWorker).config(t)
	scfg.MaxFrameSize = 1024
	sc, cc := pairConfigs(t, scfg, newNode(t, attest.RoleProxy).config(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	cs, err := cc.OpenStream(ctx)
	require.NoError(err)
	require.NoError(cs.Send(&wire.Error{Message: string(make([]byte, 4096))}))
	ss, err := sc.AcceptStream(ctx)
	require.NoError(err)
	_, err = ss.Recv()
	require.ErrorIs(err, wire.ErrFrameTooLarge)
	_, err = cs.Recv()
	code, ok := ErrorCode(err)
	require.True(ok)
	require.Equal(wire.CodeFrameTooLarge, code)
}

func TestRotationKeepsLiveConnections(t *testing.T) {
	require := require.New(t)
	server, client := newNode(t, attest.RoleProxy), newNode(t, attest.RoleWorker)
	l := listen(t, server)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := Dial(ctx, l.Addr().String(), client.config(t))
	require.NoError(err)
	defer cc.Close(0, "")
	sc, err := l.Accept(ctx)
	require.NoError(err)
	defer sc.Close(0, "")
	oldKey := cc.Peer().Claims.PublicKey

	require.NoError(server.identity.Rotate())
	_, err = cc.Ping(ctx)
	require.NoError(err, "live connection survives rotation")

	cc2, err := Dial(ctx, l.Addr().String(), client.config(t))
	require.NoError(err)
	defer cc2.Close(0, "")
	sc2, err := l.Accept(ctx)
	require.NoError(err)
	defer sc2.Close(0, "")
	require.NotEqual(oldKey, cc2.Peer().Claims.PublicKey, "new connections see the new certificate")
}

// twoFrames opens a stream from a proxy to a worker and sends first and second on it in one
// write; it returns both ends, and the worker's and the proxy's connection.
func twoFrames(t *testing.T, first, second string) (cs, ss *Stream, sc, cc *Conn) {
	t.Helper()
	return sentFrames(t, first, second)
}

// sentFrames opens a stream and sends frames on it in one write, and returns both its ends.
func sentFrames(t *testing.T, frames ...string) (cs, ss *Stream, sc, cc *Conn) {
	t.Helper()
	sc, cc = pair(t, newNode(t, attest.RoleWorker), newNode(t, attest.RoleProxy))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := cc.OpenStream(ctx)
	require.NoError(t, err)
	for _, f := range frames[:len(frames)-1] {
		cs.QueueFrame(wire.TypeChunk, []byte(f))
	}
	require.NoError(t, cs.SendFrame(wire.TypeChunk, []byte(frames[len(frames)-1])))
	ss, err = sc.AcceptStream(ctx)
	require.NoError(t, err)
	return cs, ss, sc, cc
}

func TestFrameBuffered(t *testing.T) {
	require := require.New(t)
	// Two frames in one write: after reading the first, the second is already here.
	cs, ss, _, _ := twoFrames(t, "one", "two")
	require.Zero(cap(cs.wbuf), "a stream that flushed what it queued holds no write buffer")
	_, p, err := ss.RecvFrame()
	require.NoError(err)
	require.Equal("one", string(p))
	require.True(ss.FrameBuffered())
	_, p, err = ss.RecvFrame()
	require.NoError(err)
	require.Equal("two", string(p))
	require.False(ss.FrameBuffered(), "nothing more has arrived")
	require.NoError(cs.CloseSend())
}

// TestFrameBufferedBurst: a burst larger than the stream's read buffer is taken from QUIC at
// once after the read that filled the buffer, so every frame past the first kilobyte is seen as
// buffered (a relay writes them all out together), and once read the stream holds no burst
// buffer while it waits for more.
func TestFrameBufferedBurst(t *testing.T) {
	require := require.New(t)
	const frames = 20
	chunk := strings.Repeat("t", 300)
	burst := make([]string, frames)
	for i := range burst {
		burst[i] = chunk
	}
	cs, ss, _, _ := sentFrames(t, burst...)
	frameSize := wire.HeaderSize + len(chunk)
	// Wait until the whole burst has arrived (Peek returns once it has).
	_, err := ss.s.Peek(make([]byte, frames*frameSize))
	require.NoError(err)
	for i := range frames {
		_, p, err := ss.RecvFrame()
		require.NoError(err)
		require.Equal(chunk, string(p))
		left := frames - 1 - i
		if end := (i + 1) * frameSize; end <= readBuffer {
			// Still in the first read, straight into the read buffer.
			require.Equal(readBuffer-end, ss.Buffered(), "frame %d", i)
			continue
		}
		require.Equal(left*frameSize, ss.Buffered(), "frame %d", i)
		require.Equal(left > 0, ss.FrameBuffered(), "frame %d", i)
	}
	require.Zero(ss.rd.spill.Len(), "a stream that read all it was sent holds no burst buffer (an empty Buffer holds none)")
	require.NoError(cs.CloseSend())
	_, _, err = ss.RecvFrame()
	require.ErrorIs(err, io.EOF)
}

// TestCloseRead: after CloseRead a stream reads nothing more (the frames still waiting are let go
// with its buffers), and its answer still reaches the peer; after CloseSend its write buffer goes.
func TestCloseRead(t *testing.T) {
	require := require.New(t)
	cs, ss, _, _ := twoFrames(t, "request", "more")
	_, p, err := ss.RecvFrame()
	require.NoError(err)
	require.Equal("request", string(p))
	ss.CloseRead()
	require.Zero(ss.Buffered())
	require.False(ss.FrameBuffered())
	_, _, err = ss.RecvFrame()
	require.ErrorIs(err, errReadClosed)
	require.NoError(ss.SendFrame(wire.TypeChunk, []byte("answer")))
	require.NoError(ss.CloseSend())
	require.Nil(ss.wbuf, "nothing more is sent: the write buffer is let go")
	_, p, err = cs.RecvFrame()
	require.NoError(err)
	require.Equal("answer", string(p))
}

// TestCloseSendAfterPeerStoppedReading: a requester whose peer has all it wanted (CloseRead)
// before the requester closes its side is told nothing failed.
func TestCloseSendAfterPeerStoppedReading(t *testing.T) {
	require := require.New(t)
	cs, ss, _, _ := twoFrames(t, "request", "")
	_, _, err := ss.RecvFrame()
	require.NoError(err)
	ss.CloseRead()
	select {
	case <-cs.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the requester never learned that the peer stopped reading")
	}
	require.NoError(cs.CloseSend())
}

// TestHeldStreams: a stream counts as held until each end is done with both directions; the
// requester that stops at the answer's last frame, without reading the end after it, still holds
// it.
func TestHeldStreams(t *testing.T) {
	require := require.New(t)
	cs, ss, sc, cc := twoFrames(t, "request", "")
	require.NoError(cs.CloseSend())
	_, _, err := ss.RecvFrame()
	require.NoError(err)
	ss.CloseRead()
	require.NoError(ss.Send(&wire.Done{}))
	require.NoError(ss.CloseSend())
	require.Zero(sc.HeldStreams(), "the answering end is done with it")
	typ, _, err := cs.RecvFrame()
	require.NoError(err)
	require.Equal(wire.TypeDone, typ)
	require.EqualValues(1, cc.HeldStreams(), "the end after Done is not read yet")
	_, _, err = cs.RecvFrame()
	require.ErrorIs(err, io.EOF)
	require.Zero(cc.HeldStreams())
}

// TestConnectionEndsWithPeerCertificate: a connection does not outlive the attestation it was
// made with; both ends see it close when the peer's certificate expires.
func TestConnectionEndsWithPeerCertificate(t *testing.T) {
	require := require.New(t)
	sc, cc, _ := expiringPair(t, 2*time.Second)
	start := time.Now()
	select {
	case <-sc.Done():
		code, ok := ErrorCode(sc.Err())
		require.True(ok, "closed with %v", sc.Err())
		require.Equal(wire.CodeShutdown, code)
		// Validity runs from a minute before creation (clock skew), so expiry is at most ~2s away.
		require.Less(time.Since(start), 5*time.Second)
	case <-time.After(10 * time.Second):
		t.Fatal("connection outlived the peer certificate")
	}
	select {
	case <-cc.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the other end did not see the close")
	}
}

// expiringPair connects a worker whose certificate expires after validity to a proxy whose
// certificate lasts a day; it returns the proxy's end, the worker's end and the worker's identity.
func expiringPair(t *testing.T, validity time.Duration) (*Conn, *Conn, *Identity) {
	t.Helper()
	client := newNode(t, attest.RoleWorker)
	id, err := NewIdentity(IdentityConfig{Claims: attesttest.Claims(attest.RoleWorker),
		Quoter: attesttest.Quoter(t, attesttest.Measurements(attest.RoleWorker)), Validity: validity})
	require.NoError(t, err)
	client.identity = id
	sc, cc := pair(t, newNode(t, attest.RoleProxy), client)
	return sc, cc, id
}

// A connection drains a quarter of its life (at most DrainBefore) before the earlier of the two
// certificates expires, on both ends at once, and still carries requests while it drains.
func TestConnectionDrainsBeforeItEnds(t *testing.T) {
	require := require.New(t)
	sc, cc, id := expiringPair(t, 4*time.Second)

	// The worker's certificate expires first; the proxy's lasts a day.
	ends := id.Certificate().Leaf.NotAfter
	require.Equal(ends, sc.Ends())
	require.Equal(ends, cc.Ends())
	require.False(sc.IsDraining())
	for _, c := range []*Conn{sc, cc} {
		select {
		case <-c.Draining():
		case <-c.Done():
			t.Fatal("connection ended without draining first")
		case <-time.After(10 * time.Second):
			t.Fatal("connection never drained")
		}
		require.True(c.IsDraining())
		require.Greater(time.Until(ends), 100*time.Millisecond, "drained too late")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go echo(ctx, sc)
	s, err := cc.OpenStream(ctx)
	require.NoError(err)
	require.NoError(s.Send(&wire.Ping{Nonce: 7}))
	got, err := s.Recv()
	require.NoError(err, "a draining connection still carries requests")
	require.EqualValues(7, got.(*wire.Ping).GetNonce())
	select {
	case <-sc.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("connection outlived the certificate")
	}
}

// A certificate is renewed two thirds into its life counted from when it was made, not from its
// backdated NotBefore: short-lived certificates are not renewed over and over.
func TestRenewAt(t *testing.T) {
	made := time.Now()
	id, err := NewIdentity(IdentityConfig{Claims: attesttest.Claims(attest.RoleClient), Validity: 30 * time.Second,
		Now: func() time.Time { return made }})
	require.NoError(t, err)
	require.WithinDuration(t, made.Add(20*time.Second), id.renewAt(), time.Second)
}

// Both ends know which certificate the listener served, also just after it renewed it: the
// connection ends with the certificate it was made with, not with the one replaced.
func TestEndsWithTheServedCertificate(t *testing.T) {
	require := require.New(t)
	clock := time.Now().Add(-10 * time.Minute)
	server := newNode(t, attest.RoleProxy)
	id, err := NewIdentity(IdentityConfig{Claims: attesttest.Claims(attest.RoleProxy), Validity: time.Hour,
		Quoter: attesttest.Quoter(t, attesttest.Measurements(attest.RoleProxy)), Now: func() time.Time { return clock }})
	require.NoError(err)
	server.identity = id
	clock = clock.Add(10 * time.Minute)
	require.NoError(id.Rotate())
	sc, cc := pair(t, server, newNode(t, attest.RoleWorker))
	require.Equal(id.Certificate().Leaf.NotAfter, sc.Ends())
	require.Equal(id.Certificate().Leaf.NotAfter, cc.Ends())
}

// The two ends drain at the same moment even when configured differently: each announces its
// window in Hello, and both use the longer.
func TestDrainWindowAgreed(t *testing.T) {
	scfg, ccfg := newNode(t, attest.RoleProxy).config(t), newNode(t, attest.RoleWorker).config(t)
	scfg.DrainBefore, ccfg.DrainBefore = time.Minute, 3*time.Minute
	sc, cc := pairConfigs(t, scfg, ccfg)
	require.Equal(t, cc.Ends(), sc.Ends())
	require.Equal(t, cc.Ends().Add(-3*time.Minute), sc.drainAt)
	require.Equal(t, sc.drainAt, cc.drainAt)
}

// TestHandshakeCertificateWithoutItsKey: a genuine certificate presented by a peer without its key
// (copied from the node it names) fails the handshake at TLS's CertificateVerify, which is what
// binds a handshake's certificate to its key: the listener accepts nothing.
func TestHandshakeCertificateWithoutItsKey(t *testing.T) {
	server := newNode(t, attest.RoleProxy)
	l := listen(t, server)
	genuine := quotedCert(t, attest.RoleWorker, attesttest.Measurements(attest.RoleWorker), time.Now(), time.Hour)
	client := newNode(t, attest.RoleWorker)
	client.identity = fixedIdentity(attest.RoleWorker, tls.Certificate{Certificate: genuine.Certificate, PrivateKey: newKey(t), Leaf: genuine.Leaf})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Dial(ctx, l.Addr().String(), client.config(t))
	require.Error(t, err)
	var te *quic.TransportError
	require.ErrorAs(t, err, &te)
	assert.True(t, te.ErrorCode.IsCryptoError(), "TLS alert: %v", te)
	assert.Empty(t, l.accepted, "no connection may be accepted")
}
