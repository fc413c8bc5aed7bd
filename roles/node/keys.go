package node

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"

	"github.com/cocoon-network/cocoon/config"
	"github.com/cocoon-network/cocoon/settle/chain"
)

// KeyIn loads the wallet key dir/name.key, making it on first use.
func KeyIn(dir, name string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, name+".key")
	k, err := chain.LoadKey(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		return chain.GenerateKey(path)
	}
	return k, err
}

// roleKey is the key a role's payments use: the configured file, or <data>/keys/<name>.key made
// on first use.
func roleKey(p config.Payments, data, name string) (ed25519.PrivateKey, error) {
	if p.Key != "" {
		return chain.LoadKey(p.Key)
	}
	return KeyIn(filepath.Join(data, "keys"), name)
}
