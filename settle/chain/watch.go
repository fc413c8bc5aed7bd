package chain

import (
	"context"
	"errors"
	"time"

	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle/contracts"
)

// WatchRegistry polls the registry every interval and calls fn with the first state it
// reads and then with every state whose version differs from the last one seen. Read errors
// are passed to onErr (which may be nil) and polling goes on. It returns when ctx is done.
func WatchRegistry(ctx context.Context, c Chain, id ton.AccountID, every time.Duration, fn func(contracts.Registry), onErr func(error)) error {
	var (
		seen    bool
		version uint32
	)
	return poll(ctx, every, func() {
		r, err := Registry(ctx, c, id)
		if err != nil {
			report(ctx, onErr, err)
			return
		}
		if !seen || r.Version != version {
			seen, version = true, r.Version
			fn(r)
		}
	})
}

// WatchDeposits polls a proxy contract and calls fn for every client account that appeared
// or changed (a deposit, a charge, a close) since the last poll; the first poll reports every
// account. The proxy role uses it to learn balances and closing clients.
func WatchDeposits(ctx context.Context, c Chain, proxy ton.AccountID, every time.Duration, fn func(ton.AccountID, contracts.ClientAccount), onErr func(error)) error {
	last := map[ton.AccountID]contracts.ClientAccount{}
	return poll(ctx, every, func() {
		p, err := Proxy(ctx, c, proxy)
		if err != nil {
			report(ctx, onErr, err)
			return
		}
		for id, acc := range p.Clients {
			if old, ok := last[id]; !ok || old != acc {
				last[id] = acc
				fn(id, acc)
			}
		}
	})
}

// WatchPayouts polls a proxy contract and calls fn for every worker account whose paid total
// appeared or grew since the last poll; the first poll reports every account. The proxy role
// uses it to show what its workers were paid on chain.
func WatchPayouts(ctx context.Context, c Chain, proxy ton.AccountID, every time.Duration, fn func(ton.AccountID, contracts.WorkerAccount), onErr func(error)) error {
	last := map[ton.AccountID]contracts.WorkerAccount{}
	return poll(ctx, every, func() {
		p, err := Proxy(ctx, c, proxy)
		if err != nil {
			report(ctx, onErr, err)
			return
		}
		for id, acc := range p.Workers {
			if old, ok := last[id]; !ok || old != acc {
				last[id] = acc
				fn(id, acc)
			}
		}
	})
}

func report(ctx context.Context, onErr func(error), err error) {
	if onErr != nil && !errors.Is(err, ctx.Err()) {
		onErr(err)
	}
}

func poll(ctx context.Context, every time.Duration, once func()) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		once()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
