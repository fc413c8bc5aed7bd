//go:build !cgo

package emu

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"
)

// TestNoCgo: built without cgo, creating a chain fails with the one error that names the fix,
// and what needs no TVM still works.
func TestNoCgo(t *testing.T) {
	_, err := New(0)
	require.ErrorIs(t, err, errNoCgo)
	assert.Contains(t, err.Error(), "built without cgo (CGO_ENABLED=0); build it with cgo")
	_, _, err = runGet(ton.AccountID{}, nil, nil, 0, 0, tlb.VmStack{})
	require.Error(t, err)
	m := Internal(ton.AccountID{}, ton.AccountID{Address: [32]byte{1}}, 1, false, nil, nil)
	assert.Equal(t, tlb.SumType("IntMsgInfo"), m.Info.SumType)
}
