package worker

import (
	"github.com/cocoon-network/cocoon/roles/internal/bounds"
	"github.com/cocoon-network/cocoon/transport/wire"
)

// bounded sets the bounds of r from its body, as the client does; a body that has none (not
// JSON, or empty) leaves them unset.
func bounded(r *wire.Request) *wire.Request {
	if b, err := bounds.Of(r.GetBody()); err == nil && r.Bounds == nil {
		r.Bounds = b
	}
	return r
}
