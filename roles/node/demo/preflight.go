package demo

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/cocoon-network/cocoon/gpu"
	"github.com/cocoon-network/cocoon/roles/node"
	"github.com/cocoon-network/cocoon/settle/chain/local"
)

// engineTimeout bounds the demo's check that a given engine answers.
const engineTimeout = 5 * time.Second

// preflight refuses, before the chain is set up, what would stop the demo later: a --listen
// address in use and an --engine that does not answer (a worker waits for its engine; the demo
// would wait in vain for its workers to register).
func preflight(ctx context.Context, o Options) error {
	if err := node.CheckListen("--listen", "tcp", o.Listen, demoOrClient); err != nil {
		return err
	}
	if o.Engine == "" {
		return nil
	}
	e, err := gpu.NewHTTP(gpu.HTTPConfig{BaseURL: o.Engine})
	if err != nil {
		return fmt.Errorf("--engine %s: %w", o.Engine, err)
	}
	hctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	if err := e.Health(hctx); err != nil {
		return fmt.Errorf("the engine at %s does not answer (%s): start it, or leave out --engine for the built-in engine", o.Engine, node.Cause(err))
	}
	return nil
}

// demoOrClient is who probably listens on a busy --listen of the demo.
const demoOrClient = "another `cocoon demo` or `cocoon client`"

// startError names the cause and the fix of a start-up failure where it is known.
func startError(o Options, err error) error {
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return fmt.Errorf("the data directory %s is in use: its local chain %s is held by another process (a running `cocoon demo` or `cocoon chain serve`): stop it, or pass another --data",
			o.Data, filepath.Join(o.Data, local.DefaultFile))
	case errors.Is(err, syscall.EADDRINUSE):
		// The client's is the one fixed port; every other role listens on a port of its own choosing.
		return fmt.Errorf("--listen %s (TCP): the port is in use (%s there?): stop it, or pick a free port with --listen", o.Listen, demoOrClient)
	}
	return err
}
