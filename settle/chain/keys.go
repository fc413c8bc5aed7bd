package chain

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/tonkeeper/tongo/wallet"
)

// ErrBadKeyFile is returned for key files that hold neither a hex seed nor a mnemonic.
var ErrBadKeyFile = errors.New("key file holds neither a 32-byte hex seed nor a TON mnemonic")

// LoadKey reads a wallet key file: 64 hex characters (an Ed25519 seed) or a TON mnemonic
// (24 words, as wallets show). The file must not be readable by others.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("load key %s: mode %v lets others read it; chmod 600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	text := strings.TrimSpace(string(b))
	if seed, err := hex.DecodeString(text); err == nil && len(seed) == ed25519.SeedSize {
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if len(strings.Fields(text)) >= 12 {
		k, err := wallet.SeedToPrivateKey(strings.Join(strings.Fields(text), " "))
		if err != nil {
			return nil, fmt.Errorf("load key %s: %w: %v", path, ErrBadKeyFile, err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("load key %s: %w", path, ErrBadKeyFile)
}

// GenerateKey writes a new random hex seed to path (mode 0600) and returns the key. It never
// overwrites an existing file.
func GenerateKey(path string) (ed25519.PrivateKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	if _, err := f.WriteString(hex.EncodeToString(seed) + "\n"); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("generate key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
