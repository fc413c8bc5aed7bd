package transport

import "crypto/ed25519"

type ed25519Private = ed25519.PrivateKey

func ed25519Key(k ed25519.PublicKey) any { return k }
