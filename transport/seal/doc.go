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
// check against what it sent and received and keep. The receipt names the record's digest, so
// the client checks the record the proxy charged by with the receipt's one signature.
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
//	  │ sealed, opener = session(hpke_pub)  │                                   │
//	  │   .SealRequest({id, model, quote},  │                                   │
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
// A client seals its requests to one worker key in a Session: one KEM encapsulation, whose secret
// the keys of every request of the session come from. The worker decapsulates a session's enc the
// first time a body opens under it and keeps the secret (at most MaxSessions per key), so the
// KEM's cost is paid once per session on each side, not once per request.
//
//	enc, ctx    = HPKE.SetupBaseS(worker hpke_pub, "cocoon/seal/v2 session")   (worker: SetupBaseR)
//	session     = ctx.Export("cocoon session", 32)
//	info        = "cocoon/seal/v2 request" ‖ 0x00 ‖ len₂ ‖ request id ‖ len₂ ‖ model ‖ quote hash₃₂
//	seal_nonce  16 random bytes, chosen by the client for each sealing
//	prk         = HKDF-Extract(SHA-256, salt = enc ‖ seal_nonce, ikm = session)
//	req key     = HKDF-Expand(prk, "request" ‖ info, 32)
//	secret      = HKDF-Expand(prk, "answer" ‖ info, 32)
//	sealed req  = 0x02 ‖ key id₈ ‖ binding id₈ ‖ seal_nonce₁₆ ‖ enc₁₁₂₀ ‖ ChaCha20-Poly1305(req key, 0¹², aad = first 33 bytes, body)
//	              key id = SHA-256(hpke_pub)[:8], binding id = SHA-256(info)[:8]: diagnosis only
//	answer_nonce  32 random bytes, chosen by the worker for each answer
//	prk         = HKDF-Extract(SHA-256, salt = enc ‖ answer_nonce, ikm = secret)
//	key         = HKDF-Expand(prk, "key", 32)
//	base        = HKDF-Expand(prk, "nonce", 12)
//	frame i     = kind₁ ‖ i₄ ‖ [answer_nonce, if i = 0] ‖ ChaCha20-Poly1305(key, base ⊕ i, aad = kind ‖ i, p)
//	              kind 1 chunk: p = chunk i
//	              kind 2 end:   i = number of chunks, p = answer length₈ ‖ trailer
//
// Every sealing has a key of its own: the seal nonce makes it fresh even when one binding is
// sealed twice (a reseal after a failover to the same worker), and the binding enters it, so a
// request moved to another request id, model or quote does not open. A session's requests carry
// the same enc, so the proxy can tell they belong together; it knows that already, since they
// share a client connection. The session secret opens all of a session's requests, which is why a
// client makes a new session after a while (roles/client: every 10 minutes).
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
