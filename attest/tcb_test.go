package attest

import (
	"testing"

	"github.com/google/go-tdx-guest/pcs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func svns(v ...byte) []pcs.TcbComponent {
	out := make([]pcs.TcbComponent, 16)
	for i, s := range v {
		out[i].Svn = s
	}
	return out
}

// evaluateTCB follows go-tdx-guest's matching: first level in order that every SVN reaches; the
// TDX module rated by its identity when its major version is above 0; the QE by ISV SVN. The
// policy then judges every component.
func TestEvaluateTCB(t *testing.T) {
	level := func(status pcs.TcbComponentStatus, sgx, tdx []pcs.TcbComponent, pce uint16) pcs.TcbLevel {
		return pcs.TcbLevel{Tcb: pcs.Tcb{SgxTcbcomponents: sgx, TdxTcbcomponents: tdx, Pcesvn: pce}, TcbStatus: status, TcbDate: "2025-01-01T00:00:00Z"}
	}
	info := pcs.TcbInfo{
		TcbLevels: []pcs.TcbLevel{
			level(pcs.TcbComponentStatusUpToDate, svns(5, 5), svns(9, 0, 3), 13),
			level(pcs.TcbComponentStatusSwHardeningNeeded, svns(5, 5), svns(0, 0, 2), 13),
			level(pcs.TcbComponentStatusOutOfDate, svns(4), svns(0, 0, 1), 10),
		},
		TdxModuleIdentities: []pcs.TdxModuleIdentity{{ID: "TDX_01", TcbLevels: []pcs.TcbLevel{
			{Tcb: pcs.Tcb{Isvsvn: 5}, TcbStatus: pcs.TcbComponentStatusUpToDate},
			{Tcb: pcs.Tcb{Isvsvn: 2}, TcbStatus: pcs.TcbComponentStatusOutOfDate},
		}}},
	}
	qe := pcs.EnclaveIdentity{TcbLevels: []pcs.TcbLevel{
		{Tcb: pcs.Tcb{Isvsvn: 8}, TcbStatus: pcs.TcbComponentStatusUpToDate},
		{Tcb: pcs.Tcb{Isvsvn: 4}, TcbStatus: pcs.TcbComponentStatusSwHardeningNeeded},
	}}
	cpu := []byte{5, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	testCases := map[string]struct {
		tee        []byte
		qeSVN      uint32
		pce        uint16
		wantStatus pcs.TcbComponentStatus
		wantModule bool
		problem    string
		accept     []pcs.TcbComponentStatus
		refused    string
	}{
		"all up to date":            {tee: []byte{5, 1, 3}, qeSVN: 8, pce: 13, wantStatus: pcs.TcbComponentStatusUpToDate, wantModule: true},
		"module out of date":        {tee: []byte{3, 1, 3}, qeSVN: 8, pce: 13, wantStatus: pcs.TcbComponentStatusOutOfDate, wantModule: true, refused: "TDX module"},
		"platform SW hardening":     {tee: []byte{5, 1, 2}, qeSVN: 8, pce: 13, wantStatus: pcs.TcbComponentStatusSwHardeningNeeded, wantModule: true, refused: "platform"},
		"platform SW hardening ok":  {tee: []byte{5, 1, 2}, qeSVN: 8, pce: 13, wantStatus: pcs.TcbComponentStatusSwHardeningNeeded, wantModule: true, accept: []pcs.TcbComponentStatus{pcs.TcbComponentStatusSwHardeningNeeded}},
		"QE SW hardening":           {tee: []byte{5, 1, 3}, qeSVN: 5, pce: 13, wantStatus: pcs.TcbComponentStatusSwHardeningNeeded, wantModule: true, refused: "quoting enclave"},
		"module 1.0 compares bytes": {tee: []byte{9, 0, 3}, qeSVN: 8, pce: 13, wantStatus: pcs.TcbComponentStatusUpToDate},
		"module 1.0 below level":    {tee: []byte{8, 0, 3}, qeSVN: 8, pce: 13, wantStatus: pcs.TcbComponentStatusSwHardeningNeeded, refused: "platform"},
		"PCE SVN too low":           {tee: []byte{5, 1, 3}, qeSVN: 8, pce: 12, wantStatus: pcs.TcbComponentStatusOutOfDate, wantModule: true, refused: "platform"},
		"no platform level":         {tee: []byte{5, 1, 0}, qeSVN: 8, pce: 9, problem: "matches the platform", refused: "matches the platform"},
		"unknown module":            {tee: []byte{5, 2, 3}, qeSVN: 8, pce: 13, problem: "TDX_02", refused: "TDX_02"},
		"QE below every level":      {tee: []byte{5, 1, 3}, qeSVN: 3, pce: 13, problem: "ISV SVN 3", refused: "ISV SVN 3"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			tee := make([]byte, 16)
			copy(tee, tc.tee)
			ext := &pcs.PckExtensions{TCB: pcs.PckCertTCB{PCESvn: tc.pce, CPUSvnComponents: cpu}}
			r := evaluateTCB(&info, &qe, tee, ext, tc.qeSVN)
			if tc.problem != "" {
				assert.Contains(r.Problem, tc.problem)
				assert.Empty(r.Status)
			} else {
				assert.Empty(r.Problem)
				assert.Equal(tc.wantStatus, r.Status)
				assert.Equal(tc.wantModule, r.Module != nil)
			}
			p := Policy{AcceptTCBStatuses: tc.accept}
			err := p.checkTCB(r)
			if tc.refused == "" {
				require.NoError(err)
				return
			}
			require.ErrorIs(err, ErrTCBStatus)
			require.ErrorContains(err, tc.refused)
		})
	}
}

func TestTDAttributeNames(t *testing.T) {
	assert.Equal(t, "none", TDAttributeNames([8]byte{}))
	assert.Equal(t, "DEBUG SEPT_VE_DISABLE PERFMON other=0x2", TDAttributeNames([8]byte{0x03, 0, 0, 0x10, 0, 0, 0, 0x80}))
}
