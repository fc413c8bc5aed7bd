// Package settle is cocoon's money: request pricing, the payment states a proxy signs
// (cumulative "client charged" and "worker earned" totals), and the types shared with the
// settlement contracts on TON.
//
// Sub-packages hold the rest: settle/contracts (the Tolk contracts, their compiled code and
// message builders), settle/chain (the chain interface with a local emulated chain and a
// lite-server implementation) and settle/chaincmd (the `cocoon chain` commands).
//
// Every amount is an integer number of nanoTON held in a uint64; no floating point is used.
package settle
