package chaincmd

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/cocoon-network/cocoon/settle/chain"
)

// ChainFlags are the flags that say which chain to read (the local chain of --data or
// --chain-data, or TON), with their defaults and COCOON_* variables, for a command of its own
// outside `cocoon chain` (`cocoon network`). WithChain opens the chain they name.
func ChainFlags() []cli.Flag { return chainFlags(true, false) }

// WithChain runs f on the chain the chain flags of c name (ChainFlags, or `chain`'s own), then
// closes it.
func WithChain(c *cli.Context, f func(context.Context, chain.Chain) error) error {
	return withChain(c, f)
}
