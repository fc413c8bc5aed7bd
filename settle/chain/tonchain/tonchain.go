// Package tonchain is cocoon's access to real TON (mainnet or testnet) through tongo's
// lite-server client. It reads accounts with lite-server queries and sends through a v5r1
// wallet whose key comes from a key file (chain.LoadKey).
package tonchain

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/tonkeeper/tongo/config"
	"github.com/tonkeeper/tongo/liteapi"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle/chain"
)

// Network selects the network a wallet's messages are valid on.
type Network string

const (
	Mainnet Network = "mainnet"
	Testnet Network = "testnet"
)

// GlobalID is the network's global id, which v5 wallets bind into every signed message.
func (n Network) GlobalID() (int32, error) {
	switch n {
	case Mainnet:
		return -239, nil
	case Testnet:
		return -3, nil
	default:
		return 0, fmt.Errorf("unknown network %q (want mainnet or testnet)", n)
	}
}

// Dial connects to the lite servers of a global config file (as published at
// ton.org/global.config.json or ton.org/testnet-global.config.json).
func Dial(ctx context.Context, configPath string, network Network) (chain.Chain, error) {
	if _, err := network.GlobalID(); err != nil {
		return nil, fmt.Errorf("dial ton: %w", err)
	}
	cfg, err := config.ParseConfigFile(configPath)
	if err != nil {
		return nil, fmt.Errorf("dial ton: read %s: %w", configPath, err)
	}
	// Fast proofs make tongo check the blocks it is given; account states are still taken on
	// the lite servers' word, so use servers you trust (the contracts' parsers assume nothing).
	client, err := liteapi.NewClient(liteapi.WithConfigurationFile(*cfg), liteapi.WithInitializationContext(ctx),
		liteapi.WithProofPolicy(liteapi.ProofPolicyFast))
	if err != nil {
		return nil, fmt.Errorf("dial ton: %w", err)
	}
	return New(client, network)
}

// New builds the chain on any backend; tests pass a stub with recorded answers. A panic in
// the backend (tongo decoding a malformed lite-server answer) becomes an error.
func New(b chain.Backend, network Network) (chain.Chain, error) {
	id, err := network.GlobalID()
	if err != nil {
		return nil, err
	}
	if b != nil {
		b = guarded{b}
	}
	return chain.New(b, chain.Options{NetworkGlobalID: &id}), nil
}

// guarded is a backend whose panics are errors: lite servers are not trusted to send well-formed
// answers, and a bad answer must fail one read, not the process.
type guarded struct{ b chain.Backend }

func recovered(op string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: malformed lite server answer: %v", op, r)
	}
}

func (g guarded) GetAccountState(ctx context.Context, id ton.AccountID) (st tlb.ShardAccount, err error) {
	defer recovered("get account state", &err)
	return g.b.GetAccountState(ctx, id)
}

func (g guarded) SendMessage(ctx context.Context, payload []byte) (code uint32, err error) {
	defer recovered("send message", &err)
	return g.b.SendMessage(ctx, payload)
}

func (g guarded) GetSeqno(ctx context.Context, id ton.AccountID) (seqno uint32, err error) {
	defer recovered("get seqno", &err)
	return g.b.GetSeqno(ctx, id)
}

// WalletAddress is the address of pub's wallet on network, which follows from the key alone.
// The local chain uses mainnet's wallet id, so its addresses are mainnet's.
func WalletAddress(pub ed25519.PublicKey, network Network) (ton.AccountID, error) {
	c, err := New(nil, network)
	if err != nil {
		return ton.AccountID{}, err
	}
	return c.WalletAddress(pub)
}
