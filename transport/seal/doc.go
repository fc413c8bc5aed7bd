// Package seal encrypts a request end to end, from the app's client to the attested worker that
// answers it, so that the proxy between them routes and meters ciphertext it cannot read.
//
// A worker holds an HPKE key pair (GenerateKey) and names the public key in its attested claims;
// a client that verified the worker's quote seals the request body to that key (SealRequest), for
// a Binding that both sides compute themselves: the request id, the routed model name and the
// digest of the worker's quote. The worker opens it (OpenRequest) and seals its answer, chunk by
// chunk, under keys exported from the same HPKE context (AnswerSealer); the client opens the
// chunks in order (AnswerOpener) and learns of any change, loss, reordering, replay or truncation.
// The worker also signs, with its attested Ed25519 certificate key, a UsageRecord that the proxy
// meters by, and a Receipt, sealed to the client in the answer's end marker, that the client can
// check against what it sent and received and keep.
//
// Suite (fixed, no negotiation): HPKE base mode, KEM MLKEM768-X25519 (X-Wing), KDF HKDF-SHA256,
// AEAD ChaCha20-Poly1305; see keys.go for why.
//
// # Message flow
//
//	client                               proxy                              worker
//	  │ Request{id, model, bounds, seal} ──▶│ reserve by the clear fields       │
//	  │◀──── WorkerOffer{certificate} ──────│ the worker it picked              │
//	  │ verify worker quote; its claims     │                                   │
//	  │ name hpke_pub and the signing key   │                                   │
//	  │ sealed, opener = SealRequest(       │                                   │
//	  │   hpke_pub, {id, model, quote},     │                                   │
//	  │   body)                             │                                   │
//	  │ SealedBody{sealed} ────────────────▶│ route by id, model (clear)        │
//	  │                                     │ Request{id, model, sealed} ──────▶│ body, sealer = OpenRequest(
//	  │                                     │                                   │   priv, {id, model, quote}, sealed)
//	  │                                     │◀───────── sealer.Seal(chunk 0) ───│  frame 0 carries answer_nonce
//	  │◀──────────────────── frame 0 ───────│ relays, cannot read               │
//	  │ opener.Open(frame 0) → chunk 0      │◀───────── sealer.Seal(chunk i) ───│
//	  │◀──────────────────── frame i ───────│                                   │
//	  │ opener.Open(frame i) → chunk i      │◀── UsageRecord (signed, clear) ───│  proxy charges by it
//	  │                                     │◀── sealer.End(receipt) ───────────│
//	  │◀────────────────── end marker ──────│                                   │
//	  │ opener.Open(end); opener.Done() == nil; receipt = ParseReceipt(opener.Trailer())
//	  │ receipt.Verify(worker key); receipt.CheckAnswer(body, answer)
//
// # Key schedule
//
//	info        = "cocoon/seal/v1 request" ‖ 0x00 ‖ len₂ ‖ request id ‖ len₂ ‖ model ‖ quote hash₃₂
//	enc, ctx    = HPKE.SetupBaseS(worker hpke_pub, info)        (worker: SetupBaseR(enc, priv, info))
//	sealed req  = 0x01 ‖ key id₈ ‖ binding id₈ ‖ enc₁₁₂₀ ‖ ctx.Seal(aad = first 17 bytes, body)
//	              key id = SHA-256(hpke_pub)[:8], binding id = SHA-256(info)[:8]: diagnosis only
//	secret      = ctx.Export("cocoon answer", 32)
//	answer_nonce  32 random bytes, chosen by the worker for each answer
//	prk         = HKDF-Extract(SHA-256, salt = enc ‖ answer_nonce, ikm = secret)
//	key         = HKDF-Expand(prk, "key", 32)
//	base        = HKDF-Expand(prk, "nonce", 12)
//	frame i     = kind₁ ‖ i₄ ‖ [answer_nonce, if i = 0] ‖ ChaCha20-Poly1305(key, base ⊕ i, aad = kind ‖ i, p)
//	              kind 1 chunk: p = chunk i
//	              kind 2 end:   i = number of chunks, p = answer length₈ ‖ trailer
//
// As in Oblivious HTTP (RFC 9458, §4.4), the worker's answer_nonce gives every answer fresh keys:
// a proxy that replays a sealed request gets a second answer under other keys, never two
// plaintexts under one key and nonce. Replay of a whole request is the proxy's to meter, not
// this package's to prevent.
//
// # What the client detects
//
// Every frame is authenticated with its kind and number, so a flipped byte is ErrTampered, a frame
// seen before is ErrReplayed, a frame ahead of the one due (one dropped, or reordered) is
// ErrOutOfOrder, and a stream that ends without its end marker is ErrTruncated at Done. The end
// marker's number is the chunk count, so no chunk can be cut from the end either. A request
// opened with the wrong key is ErrWrongKey, one sealed for another binding ErrBinding.
//
// # Bounds
//
// Every opener and parser takes untrusted bytes and checks their length against a bound
// (MaxSealedRequestSize, MaxFrameSize, MaxRecordSize) before it allocates; none allocates more
// than its input's size, and none panics.
package seal
