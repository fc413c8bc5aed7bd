package statsweb

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Serve listens on addr and serves the role's endpoints until ctx ends; wg tracks the server.
func Serve(ctx context.Context, wg *sync.WaitGroup, addr, role string, src Source) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen stats %s: %w", role, addr, err)
	}
	mux := http.NewServeMux()
	Register(mux, role, src)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(ln)
	}()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	return ln.Addr(), nil
}
