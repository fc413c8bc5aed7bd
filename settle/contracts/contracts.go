// Package contracts holds cocoon's settlement contracts for TON: the Tolk sources (tolk/),
// their compiled code (*.boc.b64, committed and embedded), and Go codecs for their storage
// and messages, so the chain implementations and the commands never hand-assemble cells.
//
// The code is rebuilt with `go generate ./settle/...`, which installs the pinned Tolk
// compiler (@ton/tolk-js) from package-lock.json and rewrites the *.boc.b64 files;
// TestCompiledCodeIsFresh fails when they drift from the sources.
package contracts

import (
	_ "embed"
	"fmt"
	"strings"

	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/tlb"
)

//go:generate sh -c "npm ci --no-audit --no-fund --loglevel=error && node build.js"

//go:embed registry.boc.b64
var registryCodeB64 string

//go:embed proxy.boc.b64
var proxyCodeB64 string

// RegistryCode is the compiled registry contract.
func RegistryCode() *boc.Cell { return mustCode("registry", registryCodeB64) }

// ProxyCode is the compiled proxy contract.
func ProxyCode() *boc.Cell { return mustCode("proxy", proxyCodeB64) }

// mustCode panics only if the embedded, test-checked code is corrupt: a build defect.
func mustCode(name, b64 string) *boc.Cell {
	cells, err := boc.DeserializeBocBase64(strings.TrimSpace(b64))
	if err != nil || len(cells) != 1 {
		panic(fmt.Sprintf("contracts: embedded %s code is corrupt: %v", name, err))
	}
	return cells[0]
}

// Exit codes thrown by the contracts (tolk/errors.tolk).
const (
	ExitNotOwner          = 100
	ExitBadSignature      = 101
	ExitWrongProxy        = 102
	ExitOldSeqno          = 103
	ExitLowerTotal        = 104
	ExitInsufficientFunds = 105
	ExitTooEarly          = 106
	ExitUnknownParty      = 107
	ExitClosing           = 108
	ExitNotSettled        = 109
	ExitBadRequest        = 110
	ExitValueTooLow       = 111
	ExitUnknownOp         = 0xFFFF
)

// Opcodes of the registry's messages.
const (
	OpSetParams   = 0x52470001
	OpSetAllowed  = 0x52470002
	OpSetProxy    = 0x52470003
	OpChangeOwner = 0x52470004
)

// Opcodes of the proxy contract's messages.
const (
	OpTopUp               = 0x50580001
	OpSubmitState         = 0x50580002
	OpClientClose         = 0x50580003
	OpClientWithdrawStake = 0x50580004
	OpProxyAddStake       = 0x50580005
	OpProxyWithdraw       = 0x50580006
	OpProxyClose          = 0x50580007
	OpProxySettleClient   = 0x50580008
	OpProxyWithdrawStake  = 0x50580009
	OpPayout              = 0x5058000A
)

// OpFee is what the proxy contract keeps from every deposit and stake to pay for its gas and
// storage rent (OP_FEE in proxy.tolk); Reserve is the balance it never pays out (RESERVE).
const (
	OpFee   = 20_000_000
	Reserve = 50_000_000
)

func header(op uint32, queryID uint64) *boc.Cell {
	c := boc.NewCell()
	_ = c.WriteUint(uint64(op), 32) // cannot fail on an empty cell
	_ = c.WriteUint(queryID, 64)
	return c
}

// safeUnmarshal decodes storage that may come from an untrusted lite server: tongo's decoder
// can panic on malformed cells, which must be an error here, not a crash.
func safeUnmarshal(c *boc.Cell, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed cell: %v", r)
		}
	}()
	return tlb.Unmarshal(c, v)
}
