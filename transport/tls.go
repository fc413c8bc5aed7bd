package transport

import (
	"crypto/tls"
	"sync/atomic"

	"github.com/quic-go/quic-go"

	"github.com/cocoon-network/cocoon/transport/wire"
)

// quicConfig is the QUIC configuration of a listener's connections or of a dialed one.
func (c *Config) quicConfig(listening bool) *quic.Config {
	streams := c.MaxStreams
	if streams <= 0 {
		streams = DefaultDialMaxStreams
		if listening {
			streams = DefaultMaxStreams
		}
	}
	if listening {
		streams++ // the dialer's control stream
	}
	return &quic.Config{
		HandshakeIdleTimeout:  c.HandshakeTimeout,
		MaxIdleTimeout:        c.IdleTimeout,
		KeepAlivePeriod:       c.KeepAlive,
		MaxIncomingStreams:    streams,
		MaxIncomingUniStreams: -1,
	}
}

// serverTLS asks every client for a certificate and verifies it inside the handshake.
func serverTLS(c *Config, pv *peerVerifier, onReject func(remote string, err error)) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{wire.ALPN},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if overLimit(hello.Context()) {
				// Refused already (Listener.connContext): the handshake only carries the reason,
				// so the peer's certificate is neither asked for nor verified.
				return &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{wire.ALPN},
					GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
						return c.Identity.Certificate(), nil
					}}, nil
			}
			remote := ""
			if hello.Conn != nil {
				remote = hello.Conn.RemoteAddr().String()
			}
			// The certificate served is remembered for this handshake: the connection ends when it
			// expires, if the client's does not first.
			var served atomic.Pointer[tls.Certificate]
			return &tls.Config{
				MinVersion: tls.VersionTLS13,
				NextProtos: []string{wire.ALPN},
				ClientAuth: tls.RequireAnyClientCert,
				GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
					cert := c.Identity.Certificate()
					served.Store(cert)
					return cert, nil
				},
				VerifyPeerCertificate: pv.hook(&served, func(err error) { onReject(remote, err) }),
			}, nil
		},
	}
}

// clientTLS verifies the server's RA-TLS certificate itself: there is no CA, the quote is the trust.
// The certificate it presents is stored in served.
func clientTLS(c *Config, pv *peerVerifier, served *atomic.Pointer[tls.Certificate], onReject func(error)) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{wire.ALPN},
		ServerName:         "cocoon",
		InsecureSkipVerify: true, // replaced by VerifyPeerCertificate, which checks the attestation
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert := c.Identity.Certificate()
			served.Store(cert)
			return cert, nil
		},
		// The server's certificate is verified before ours is asked for: served is not known yet.
		VerifyPeerCertificate: pv.hook(&atomic.Pointer[tls.Certificate]{}, onReject),
	}
}
