// Package attestcmd implements the `cocoon attest` operator commands: make a simulated RA-TLS
// certificate, inspect a certificate or quote, and verify one against a policy. The functions take
// plain options and writers and return errors; main wires them to the command line. It sits beside
// attest rather than in it because it also reads RA-TLS certificates, which are transport's.
package attestcmd

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/sim"
	"github.com/cocoon-network/cocoon/transport"
)

// CertOptions are the options of `cocoon attest cert`.
type CertOptions struct {
	Simulated     bool
	SimDir        string // development root of trust state directory
	Role          attest.Role
	Out           string // directory for cert.pem and key.pem
	Validity      time.Duration
	Version       string
	Model         string
	WeightsDigest string
	ConfigDigest  [32]byte
}

// Cert writes a PEM certificate and its key to o.Out and prints the image hash.
func Cert(o CertOptions, stdout io.Writer) error {
	var quoter attest.Quoter
	var m attest.Measurements
	if o.Role != attest.RoleClient {
		if !o.Simulated {
			q, err := attest.NewTDXQuoter()
			if err != nil {
				return fmt.Errorf("%w (use --sim for a simulated quote)", err)
			}
			quoter = q
		} else {
			root, err := sim.Open(o.SimDir)
			if err != nil {
				return fmt.Errorf("open development root of trust: %w", err)
			}
			digest, err := attest.ExecutableDigest()
			if err != nil {
				return err
			}
			m = attest.SimulatedMeasurements(digest, o.Role, o.ConfigDigest)
			if quoter, err = attest.NewSimulatedQuoter(root, m); err != nil {
				return err
			}
		}
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	cert, err := transport.NewCertificate(transport.CertOptions{
		Key: key, Quoter: quoter, Validity: o.Validity,
		Claims: attest.Claims{Role: o.Role, Version: o.Version, Model: o.Model, WeightsDigest: o.WeightsDigest, ConfigDigest: o.ConfigDigest},
	})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", o.Out, err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	if err := os.WriteFile(filepath.Join(o.Out, "cert.pem"), certPEM, 0o644); err != nil {
		return fmt.Errorf("write certificate: %w", err)
	}
	pkcs8, err := marshalKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.Out, "key.pem"), pkcs8, 0o600); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	rc, err := transport.ParseCertificate(cert.Certificate, time.Now(), o.Validity)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "certificate  %s\n", filepath.Join(o.Out, "cert.pem"))
	fmt.Fprintf(stdout, "key          %s\n", filepath.Join(o.Out, "key.pem"))
	fmt.Fprintf(stdout, "role         %s\n", o.Role)
	fmt.Fprintf(stdout, "valid until  %s\n", rc.X509.NotAfter.UTC().Format(time.RFC3339))
	if quoter == nil {
		fmt.Fprintf(stdout, "image hash   none (no quote: %s certificates are not attested)\n", o.Role)
		return nil
	}
	q, err := attest.ParseQuote(rc.Quote)
	if err != nil {
		return err
	}
	label := ""
	if o.Simulated {
		label = " (SIMULATED)"
	}
	fmt.Fprintf(stdout, "image hash   %s%s\n", q.Measurements.ImageHash(), label)
	return nil
}

// Evidence is a certificate or a bare quote read from a file.
type Evidence struct {
	Cert  *transport.RACert // nil for a bare quote
	Quote *attest.Quote     // nil for a certificate without a quote
}

// ReadEvidence reads a PEM or DER certificate, or a raw quote.
func ReadEvidence(path string) (*Evidence, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	der := b
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: PEM block %q is not a certificate", path, blk.Type)
		}
		der = blk.Bytes
	}
	// Parse the structure without judging validity; inspect reports it and verify checks it.
	rc, certErr := parseAnyTime(der)
	if certErr == nil {
		ev := &Evidence{Cert: rc}
		if rc.Quote != nil {
			if ev.Quote, err = attest.ParseQuote(rc.Quote); err != nil {
				return nil, err
			}
		}
		return ev, nil
	}
	q, quoteErr := attest.ParseQuote(b)
	if quoteErr != nil {
		return nil, fmt.Errorf("%s is neither an RA-TLS certificate (%v) nor a TDX quote (%v)", path, certErr, quoteErr)
	}
	return &Evidence{Quote: q}, nil
}

// parseAnyTime parses a certificate at its own NotBefore, so structure is checked but not expiry.
func parseAnyTime(der []byte) (*transport.RACert, error) {
	rc, err := transport.ParseCertificate([][]byte{der}, time.Now(), 365*24*time.Hour)
	if errors.Is(err, transport.ErrCertExpired) {
		return parseAtNotBefore(der)
	}
	return rc, err
}

// Inspect prints what a certificate or quote says about itself, without judging it.
func Inspect(path, simDir string, stdout io.Writer) error {
	ev, err := ReadEvidence(path)
	if err != nil {
		return err
	}
	w := func(k, format string, a ...any) { fmt.Fprintf(stdout, "%-14s %s\n", k, fmt.Sprintf(format, a...)) }
	if ev.Cert != nil {
		c := ev.Cert
		w("kind", "RA-TLS certificate")
		now := time.Now()
		state := "valid"
		if now.Before(c.X509.NotBefore) || now.After(c.X509.NotAfter) {
			state = "EXPIRED or not yet valid"
		}
		w("validity", "%s to %s (%s)", c.X509.NotBefore.UTC().Format(time.RFC3339), c.X509.NotAfter.UTC().Format(time.RFC3339), state)
		w("key", "ed25519 %s", hex.EncodeToString(c.Key))
		claims, err := attest.DecodeClaims(c.Claims)
		if err != nil {
			w("claims", "INVALID: %v", err)
		} else {
			w("role", "%s", claims.Role)
			w("version", "%s", claims.Version)
			w("config digest", "%s", hex.EncodeToString(claims.ConfigDigest[:]))
			w("created", "%s", claims.CreatedAt.Format(time.RFC3339))
			if claims.Model != "" {
				w("model", "%s (%s)", claims.Model, claims.WeightsDigest)
			}
			if claims.PaymentKey != nil {
				w("payment key", "%s", hex.EncodeToString(claims.PaymentKey))
			}
			w("claims key", "%s", matchWord(bytes.Equal(claims.PublicKey, c.Key)))
		}
		if ev.Quote == nil {
			w("quote", "none (unattested)")
			return nil
		}
		rd := attest.ReportData(c.Claims)
		w("report data", "%s", matchWord(rd == ev.Quote.ReportData))
	} else {
		w("kind", "TDX quote")
		w("report data", "%s", hex.EncodeToString(ev.Quote.ReportData[:]))
	}
	q := ev.Quote
	m := &q.Measurements
	w("quote", "version %d, TEE type 0x%x", q.Version, q.TeeType)
	w("root of trust", "%s", rootLabel(q, simDir))
	w("MRTD", "%s", hex.EncodeToString(m.MRTD[:]))
	for i, r := range m.RTMR {
		w(fmt.Sprintf("RTMR%d", i), "%s", hex.EncodeToString(r[:]))
	}
	w("MRSEAM", "%s", hex.EncodeToString(m.MRSeam[:]))
	w("TD attributes", "%s (debug %s)", hex.EncodeToString(m.TDAttributes[:]), onOff(m.Debug()))
	w("XFAM", "%s", hex.EncodeToString(m.XFAM[:]))
	w("image hash", "%s", m.ImageHash())
	return nil
}

func rootLabel(q *attest.Quote, simDir string) string {
	if bytes.Equal(q.Root.RawSubjectPublicKeyInfo, attest.IntelRoot(nil).Cert.RawSubjectPublicKeyInfo) {
		return "Intel SGX Root CA (genuine Intel key)"
	}
	if len(q.Root.Subject.Organization) > 0 && q.Root.Subject.Organization[0] == sim.Organization {
		if r, err := sim.OpenPublic(simDir); err == nil &&
			bytes.Equal(r.Certificate().RawSubjectPublicKeyInfo, q.Root.RawSubjectPublicKeyInfo) {
			return "SIMULATED (this machine's development root)"
		}
		return "SIMULATED (a development root not on this machine)"
	}
	return "UNKNOWN root (" + q.Root.Subject.String() + ")"
}

func matchWord(ok bool) string {
	if ok {
		return "matches"
	}
	return "MISMATCH"
}

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "off"
}

// VerifyOptions are the options of `cocoon attest verify`.
type VerifyOptions struct {
	Policy         *attest.Policy // nil: every role, any image
	AllowSimulated bool
	SimDir         string
}

// Verify verifies a certificate or quote; it returns nil only when everything required passed.
func Verify(path string, o VerifyOptions, stdout io.Writer) error {
	ev, err := ReadEvidence(path)
	if err != nil {
		return err
	}
	policy := anyImagePolicy()
	if o.Policy != nil {
		policy = *o.Policy
	}
	if o.AllowSimulated {
		policy.AllowSimulated = true
	}
	roots := []attest.TrustedRoot{attest.IntelRoot(nil)}
	// The development root is known even when not allowed, so that a simulated quote is refused as
	// simulated rather than as signed by a stranger; the policy decides whether it passes.
	if r, err := sim.OpenPublic(o.SimDir); err == nil {
		roots = append(roots, attest.SimulatedRoot(r))
	} else if policy.AllowSimulated && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("load development root of trust: %w", err)
	}
	v, err := attest.NewVerifier(attest.VerifierConfig{Roots: roots, Policy: policy, CacheTTL: -1})
	if err != nil {
		return err
	}
	if ev.Cert == nil {
		p, err := v.VerifyQuote(ev.Quote.Raw)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "OK %s quote, image %s\n", p.Label(), p.ImageHash)
		return nil
	}
	if _, err := transport.ParseCertificate([][]byte{ev.Cert.X509.Raw}, time.Now(), 0); err != nil {
		return err
	}
	p, err := v.Verify(ev.Cert.Evidence())
	if err != nil {
		return err
	}
	if p.Quoted {
		fmt.Fprintf(stdout, "OK %s %s, image %s\n", p.Label(), p.Claims.Role, p.ImageHash)
	} else {
		fmt.Fprintf(stdout, "OK unattested %s (allowed without a quote by policy)\n", p.Claims.Role)
	}
	return nil
}

func anyImagePolicy() attest.Policy {
	any := attest.RolePolicy{ImageHashes: []string{attest.AnyImage}}
	return attest.Policy{Roles: map[attest.Role]attest.RolePolicy{
		attest.RoleProxy: any, attest.RoleWorker: any, attest.RoleClient: {WithoutQuote: true, ImageHashes: []string{attest.AnyImage}},
	}}
}
