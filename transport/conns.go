package transport

import "sync"

// Conns is the set of a node's live connections, for figures over all of them: a connection made
// with a Config whose Conns is set is in it from its Hello until it ends.
type Conns struct {
	mu sync.Mutex
	m  map[*Conn]struct{}
}

func (s *Conns) add(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[*Conn]struct{}{}
	}
	s.m[c] = struct{}{}
}

func (s *Conns) remove(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, c)
}

// count is how many connections are live.
func (s *Conns) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// HeldStreams is the sum of the live connections' HeldStreams: request streams this end is not
// done with, which QUIC keeps for as long as their connection lasts. A figure that grows with the
// requests served, not with those under way, is memory leaking.
func (s *Conns) HeldStreams() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for c := range s.m {
		n += c.HeldStreams()
	}
	return n
}
