package attest

import (
	"crypto/sha256"
	"time"
)

// DefaultCacheTTL is how long a verified quote is trusted without checking it again.
const DefaultCacheTTL = 10 * time.Minute

const maxCacheEntries = 4096

type cacheEntry struct {
	peer    *Peer
	expires time.Time
	policy  *Policy // the policy that judged it: another one judges afresh
}

func cacheKey(ev Evidence) [32]byte {
	h := sha256.New()
	for _, b := range [][]byte{ev.Quote, ev.Claims, ev.Key} {
		var n [8]byte
		for i, l := 0, uint64(len(b)); i < 8; i++ {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write(b)
	}
	ts, _ := ev.NotAfter.MarshalBinary()
	h.Write(ts)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func (v *Verifier) cached(key [32]byte, now time.Time) *Peer {
	if v.ttl < 0 {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.cache[key]
	if !ok {
		return nil
	}
	if !now.Before(e.expires) || e.policy != v.policy.Load() {
		delete(v.cache, key)
		return nil
	}
	return e.peer
}

func (v *Verifier) store(key [32]byte, p *Peer, pol *Policy, now time.Time) {
	if v.ttl < 0 {
		return
	}
	expires := now.Add(v.ttl)
	if !p.NotAfter.IsZero() && p.NotAfter.Before(expires) {
		expires = p.NotAfter
	}
	if !p.validUntil.IsZero() && p.validUntil.Before(expires) {
		expires = p.validUntil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) >= maxCacheEntries {
		for k, e := range v.cache {
			if !now.Before(e.expires) {
				delete(v.cache, k)
			}
		}
		if len(v.cache) >= maxCacheEntries {
			clear(v.cache)
		}
	}
	v.cache[key] = cacheEntry{peer: p, expires: expires, policy: pol}
}
