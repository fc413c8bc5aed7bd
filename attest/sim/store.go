package sim

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cocoon-network/cocoon/config/atomicfile"
)

// Names of the files in a state directory; the package doc describes them.
const (
	fileLock          = "lock"
	fileRootCert      = "root.pem"
	fileRootKey       = "root.key"
	filePlatformCert  = "pck-platform-ca.pem"
	filePlatformKey   = "pck-platform-ca.key"
	filePCKCert       = "pck.pem"
	filePCKKey        = "pck.key"
	fileTCBSigningCrt = "tcb-signing.pem"
	fileTCBSigningKey = "tcb-signing.key"
	fileTCBInfo       = "tcbinfo.json"
	fileQEIdentity    = "qeidentity.json"
	filePCKCRL        = "pckcrl.der"
	fileRootCRL       = "rootcrl.der"
)

// Open loads the development root of trust from dir, creating it when absent. Safe for several
// processes starting at once on one machine: creation happens under a lock file and every file is
// written atomically (temporary file and rename; keys with mode 0600). Collateral that is expired
// or about to expire (less than a day left) is re-signed and rewritten.
func Open(dir string) (*Root, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open development root: %w", err)
	}
	unlock, err := lockDir(dir, true)
	if err != nil {
		return nil, fmt.Errorf("open development root: %w", err)
	}
	defer unlock()

	now := time.Now()
	cs, ks, err := loadHierarchy(dir, true)
	if errors.Is(err, errNotCreated) {
		cs, ks, err = createHierarchy(dir, now)
	}
	if err != nil {
		return nil, fmt.Errorf("open development root in %s: %w", dir, err)
	}
	c, err := refreshLocked(dir, cs, ks, now)
	if err != nil {
		return nil, fmt.Errorf("open development root in %s: %w", dir, err)
	}
	return &Root{certs: cs, keys: ks, dir: dir, coll: c, lastCheck: now}, nil
}

// OpenPublic loads only what a verifier needs from dir, the root certificate and the signed
// collateral (with the certificates that sign it), never the private keys. It does not create a
// root: some process must have called Open on dir first.
func OpenPublic(dir string) (*Root, error) {
	unlock, err := lockDir(dir, false)
	if err != nil {
		return nil, fmt.Errorf("open development root (public): %w", err)
	}
	defer unlock()
	cs, _, err := loadHierarchy(dir, false)
	if err != nil {
		return nil, fmt.Errorf("open development root in %s (public): %w", dir, err)
	}
	now := time.Now()
	c, err := refreshLocked(dir, cs, nil, now)
	if err != nil {
		return nil, fmt.Errorf("open development root in %s (public): %w", dir, err)
	}
	return &Root{certs: cs, dir: dir, coll: c, lastCheck: now}, nil
}

var errNotCreated = errors.New("no development root of trust here yet")

// lockDir takes the directory's lock file. A verifier may lack write access to the directory; it
// then locks the existing file read-only, or goes without when there is none (nothing to read).
func lockDir(dir string, create bool) (unlock func(), err error) {
	path := filepath.Join(dir, fileLock)
	var f *os.File
	if create {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	} else {
		f, err = os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return func() {}, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := lockFile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = unlockFile(f)
		_ = f.Close()
	}, nil
}

func createHierarchy(dir string, now time.Time) (*certSet, *keySet, error) {
	ks, cs, err := newHierarchy(now, lifetimes{})
	if err != nil {
		return nil, nil, err
	}
	// root.pem goes last: its presence means the rest is complete, so a crash half-way leaves a
	// directory that the next Open recreates.
	for _, p := range []struct {
		name string
		cert *x509.Certificate
		key  *ecdsa.PrivateKey
	}{
		{filePlatformCert, cs.platformCA, ks.platformCA},
		{filePCKCert, cs.pck, ks.pck},
		{fileTCBSigningCrt, cs.tcbSigning, ks.tcbSigning},
		{fileRootCert, cs.root, ks.root},
	} {
		der, err := x509.MarshalPKCS8PrivateKey(p.key)
		if err != nil {
			return nil, nil, fmt.Errorf("marshal key: %w", err)
		}
		keyName := p.name[:len(p.name)-len(".pem")] + ".key"
		if err := atomicfile.Write(filepath.Join(dir, keyName), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, nil, err
		}
		if p.name == fileRootCert {
			// The collateral is written before the root certificate too.
			c, err := signCollateral(cs, ks, defaultSpec(now))
			if err != nil {
				return nil, nil, err
			}
			if err := writeCollateral(dir, c); err != nil {
				return nil, nil, err
			}
		}
		if err := atomicfile.Write(filepath.Join(dir, p.name), pemCert(p.cert), 0o644); err != nil {
			return nil, nil, err
		}
	}
	return cs, ks, nil
}

func defaultSpec(now time.Time) collateralSpec {
	opts, _ := Options{Now: now}.withDefaults()
	return collateralSpecFor(opts)
}

func loadHierarchy(dir string, withKeys bool) (*certSet, *keySet, error) {
	var cs certSet
	var err error
	if cs.root, err = readCert(filepath.Join(dir, fileRootCert)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, errNotCreated
		}
		return nil, nil, err
	}
	if cs.platformCA, err = readCert(filepath.Join(dir, filePlatformCert)); err != nil {
		return nil, nil, err
	}
	if cs.pck, err = readCert(filepath.Join(dir, filePCKCert)); err != nil {
		return nil, nil, err
	}
	if cs.tcbSigning, err = readCert(filepath.Join(dir, fileTCBSigningCrt)); err != nil {
		return nil, nil, err
	}
	var ks *keySet
	if withKeys {
		ks = &keySet{}
		for _, k := range []struct {
			name string
			dst  **ecdsa.PrivateKey
		}{
			{fileRootKey, &ks.root}, {filePlatformKey, &ks.platformCA},
			{filePCKKey, &ks.pck}, {fileTCBSigningKey, &ks.tcbSigning},
		} {
			if *k.dst, err = readKey(filepath.Join(dir, k.name)); err != nil {
				return nil, nil, err
			}
		}
	}
	if err := checkHierarchy(&cs, ks); err != nil {
		return nil, nil, err
	}
	return &cs, ks, nil
}

// refreshDir renews the collateral in dir under its lock; see Root.current.
func refreshDir(dir string, cs *certSet, ks *keySet, now time.Time) (*collateral, error) {
	unlock, err := lockDir(dir, ks != nil)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return refreshLocked(dir, cs, ks, now)
}

// refreshLocked reads the collateral in dir and, holding the keys, re-signs and rewrites it when
// it is missing, unreadable or has less than a day left. Without keys it returns what is there.
func refreshLocked(dir string, cs *certSet, ks *keySet, now time.Time) (*collateral, error) {
	c, err := readCollateral(dir)
	if err == nil && now.Before(c.nextUpdate.Add(-refreshMargin)) {
		return c, nil
	}
	if ks == nil {
		return c, err
	}
	c, err = signCollateral(cs, ks, defaultSpec(now))
	if err != nil {
		return nil, err
	}
	if err := writeCollateral(dir, c); err != nil {
		return nil, err
	}
	return c, nil
}

func readCollateral(dir string) (*collateral, error) {
	var c collateral
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{
		{fileTCBInfo, &c.tcbInfo}, {fileQEIdentity, &c.qeIdentity},
		{filePCKCRL, &c.pckCRL}, {fileRootCRL, &c.rootCRL},
	} {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			return nil, fmt.Errorf("read collateral: %w", err)
		}
		*f.dst = b
	}
	if err := parseCollateral(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

func writeCollateral(dir string, c *collateral) error {
	for _, f := range []struct {
		name string
		data []byte
	}{
		{fileTCBInfo, c.tcbInfo}, {fileQEIdentity, c.qeIdentity},
		{filePCKCRL, c.pckCRL}, {fileRootCRL, c.rootCRL},
	} {
		if err := atomicfile.Write(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("read certificate %s: no PEM CERTIFICATE block", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate %s: %w", path, err)
	}
	return c, nil
}

func readKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("read key %s: no PEM PRIVATE KEY block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse key %s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse key %s: %T is not an ECDSA key", path, k)
	}
	return ek, nil
}
