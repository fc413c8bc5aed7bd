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
	"strconv"
	"strings"
	"time"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/ratls"
	"github.com/cocoon-network/cocoon/attest/sim"
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

// runCert writes a PEM certificate and its key to o.Out and prints the image hash.
func runCert(o CertOptions, stdout io.Writer) error {
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
			if quoter, err = root.Quoter(m); err != nil {
				return err
			}
		}
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	cert, err := ratls.NewCertificate(ratls.CertOptions{
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
	rc, err := ratls.ParseCertificate(cert.Certificate, time.Now(), o.Validity)
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
	Cert  *ratls.Certificate // nil for a bare quote
	Quote *attest.Quote      // nil for a certificate without a quote
}

// ReadEvidence reads a PEM or DER certificate, or a raw quote.
func ReadEvidence(path string) (*Evidence, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	der := b
	// Only a file that starts as PEM is PEM: a DER certificate carries its quote, whose PCK chain
	// is PEM, and pem.Decode would find that chain's first certificate inside.
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN")) {
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: the PEM file holds no certificate", path)
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
func parseAnyTime(der []byte) (*ratls.Certificate, error) {
	rc, err := ratls.ParseCertificate([][]byte{der}, time.Now(), 365*24*time.Hour)
	if errors.Is(err, ratls.ErrCertExpired) {
		return parseAtNotBefore(der)
	}
	return rc, err
}

// InspectOptions are the options of `cocoon attest inspect`.
type InspectOptions struct {
	SimDir string
	// EventLog is a CC event log (the ACPI CCEL table's data) to replay against the quote's RTMRs.
	EventLog string
}

// runInspect prints what a certificate or quote says about itself, without judging it. Given an
// event log, it also shows which events produced each RTMR and whether the replay matches.
func runInspect(path string, o InspectOptions, stdout io.Writer) error {
	simDir := o.SimDir
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
	w("TD attributes", "%s (%s; debug %s)", hex.EncodeToString(m.TDAttributes[:]), attest.TDAttributeNames(m.TDAttributes), onOff(m.Debug()))
	w("XFAM", "%s", hex.EncodeToString(m.XFAM[:]))
	w("TEE TCB SVN", "%s", hex.EncodeToString(q.TeeTCBSVN[:]))
	w("image hash", "%s", m.ImageHash())
	if o.EventLog == "" {
		return nil
	}
	return replayLog(o.EventLog, m, stdout)
}

// replayLog prints the events of a CC event log by RTMR and compares the replay with the quote.
func replayLog(path string, m *attest.Measurements, stdout io.Writer) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read event log: %w", err)
	}
	events, err := attest.ParseEventLog(raw)
	if err != nil {
		return err
	}
	replay := attest.ReplayRTMRs(events)
	mismatch := 0
	fmt.Fprintf(stdout, "\nevent log      %s: %d events\n", path, len(events))
	for r := range replay {
		ok := replay[r] == m.RTMR[r]
		if !ok {
			mismatch++
		}
		fmt.Fprintf(stdout, "RTMR%d          replay %s\n", r, matchWord(ok))
		for i := range events {
			e := &events[i]
			if e.RTMR() != r {
				continue
			}
			fmt.Fprintf(stdout, "  #%-4d %-34s %s  %s\n", i, e.TypeName(), hex.EncodeToString(e.Digest[:8]), eventText(e.Data))
		}
	}
	if mismatch > 0 {
		return fmt.Errorf("event log replay does not match %d RTMR(s) of the quote", mismatch)
	}
	return nil
}

// eventText shows an event's data when it is text (UEFI action strings, command lines), else its size.
func eventText(d []byte) string {
	const max = 60
	t := strings.TrimRight(string(d), "\x00")
	printable := len(t) > 0
	for _, r := range t {
		if r < 0x20 || r > 0x7e {
			printable = false
			break
		}
	}
	if !printable {
		return fmt.Sprintf("(%d bytes)", len(d))
	}
	if len(t) > max {
		t = t[:max] + "…"
	}
	return strconv.Quote(t)
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

func anyImagePolicy() attest.Policy {
	any := attest.RolePolicy{ImageHashes: []string{attest.AnyImage}}
	return attest.Policy{Roles: map[attest.Role]attest.RolePolicy{
		attest.RoleProxy: any, attest.RoleWorker: any, attest.RoleClient: {WithoutQuote: true, ImageHashes: []string{attest.AnyImage}},
	}}
}
