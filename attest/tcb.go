package attest

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"
)

// TCBLevel is the TCB level of the collateral that one component of the platform matched.
type TCBLevel struct {
	Status      pcs.TcbComponentStatus `json:"status"`
	Date        string                 `json:"date"` // tcbDate: when this level was published
	AdvisoryIDs []string               `json:"advisory_ids,omitempty"`
}

// TCBReport rates the platform's TCB against the TCB info and QE identity of its collateral, with
// go-tdx-guest's matching rules.
type TCBReport struct {
	// Status is the worst status among the components, or "" when Problem is set.
	Status pcs.TcbComponentStatus `json:"status,omitempty"`
	// Platform is the level matched by the PCK certificate's SGX TCB and PCE SVN and the quote's TEE TCB SVN.
	Platform *TCBLevel `json:"platform,omitempty"`
	// Module is the TDX module's level (quotes from modules of major version 1 and later).
	Module *TCBLevel `json:"tdx_module,omitempty"`
	// QE is the quoting enclave's level.
	QE *TCBLevel `json:"qe,omitempty"`
	// Problem says why no status applies, e.g. the platform matches no TCB level.
	Problem string `json:"problem,omitempty"`
}

type tcbComponent struct {
	name  string
	level *TCBLevel
}

func (t *TCBReport) components() []tcbComponent {
	out := []tcbComponent{{"platform", t.Platform}}
	if t.Module != nil {
		out = append(out, tcbComponent{"TDX module", t.Module})
	}
	return append(out, tcbComponent{"quoting enclave", t.QE})
}

// CollateralReport describes the collateral a quote was checked against.
type CollateralReport struct {
	FMSPC                   string    `json:"fmspc"`
	CA                      string    `json:"pck_ca"` // "platform" or "processor"
	TCBEvaluationDataNumber int       `json:"tcb_evaluation_data_number"`
	TCBInfoIssued           time.Time `json:"tcb_info_issued"`
	TCBInfoNextUpdate       time.Time `json:"tcb_info_next_update"`
	QEIdentityIssued        time.Time `json:"qe_identity_issued"`
	QEIdentityNextUpdate    time.Time `json:"qe_identity_next_update"`
	PCKCRLIssued            time.Time `json:"pck_crl_issued"`
	PCKCRLNextUpdate        time.Time `json:"pck_crl_next_update"`
	RootCRLNextUpdate       time.Time `json:"root_crl_next_update"`
}

// NextUpdate is the earliest next-update time: when the collateral stops vouching for anything.
func (c *CollateralReport) NextUpdate() time.Time {
	next := c.TCBInfoNextUpdate
	for _, t := range []time.Time{c.QEIdentityNextUpdate, c.PCKCRLNextUpdate, c.RootCRLNextUpdate} {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}

// tcbStatusRank orders statuses from best to worst, to name the worst component.
var tcbStatusRank = map[pcs.TcbComponentStatus]int{
	pcs.TcbComponentStatusUpToDate:                          0,
	pcs.TcbComponentStatusSwHardeningNeeded:                 1,
	pcs.TcbComponentStatusConfigurationNeeded:               2,
	pcs.TcbComponentStatusConfigurationAndSWHardeningNeeded: 3,
	pcs.TcbComponentStatusOutOfDate:                         4,
	pcs.TcbComponentStatusOutOfDateConfigurationNeeded:      5,
	pcs.TcbComponentStatusRevoked:                           6,
}

func levelOf(l *pcs.TcbLevel) *TCBLevel {
	return &TCBLevel{Status: l.TcbStatus, Date: l.TcbDate, AdvisoryIDs: l.AdvisoryIDs}
}

// evaluateTCB finds the TCB levels the platform, the TDX module and the QE match. The matching
// rules are go-tdx-guest's (verify.go getMatchingTcbLevel, getMatchingTdxModuleTcbLevel,
// readQeTcbStatus): levels are taken in the collateral's order, the first whose every SVN the
// platform reaches wins. Every component is rated, as Intel's verification does: go-tdx-guest rates
// only the TDX module when its major version is above 0, and accepts only UpToDate; evaluating here
// keeps the platform's level in the verdict and lets the policy accept the statuses it lists.
func evaluateTCB(info *pcs.TcbInfo, qe *pcs.EnclaveIdentity, tee []byte, ext *pcs.PckExtensions, qeSVN uint32) *TCBReport {
	t := &TCBReport{}
	for i := range info.TcbLevels {
		l := &info.TcbLevels[i]
		if sgxSVNsReach(ext.TCB.CPUSvnComponents, l.Tcb.SgxTcbcomponents) && ext.TCB.PCESvn >= l.Tcb.Pcesvn &&
			teeSVNsReach(tee, l.Tcb.TdxTcbcomponents) {
			t.Platform = levelOf(l)
			break
		}
	}
	// Every component is evaluated, also after one fails to match, so a report shows them all.
	var problems []string
	if t.Platform == nil {
		problems = append(problems, fmt.Sprintf("no TCB level of the collateral matches the platform (TEE TCB SVN %s, PCE SVN %d, CPU SVN %s)",
			hex.EncodeToString(tee), ext.TCB.PCESvn, hex.EncodeToString(ext.TCB.CPUSvnComponents)))
	}
	if len(tee) > 1 && tee[1] > 0 {
		id := "TDX_" + hex.EncodeToString(tee[1:2])
		for _, m := range info.TdxModuleIdentities {
			if m.ID != id {
				continue
			}
			for i := range m.TcbLevels {
				if uint32(tee[0]) >= m.TcbLevels[i].Tcb.Isvsvn {
					t.Module = levelOf(&m.TcbLevels[i])
					break
				}
			}
		}
		if t.Module == nil {
			problems = append(problems, fmt.Sprintf("no TCB level of the collateral matches TDX module %s SVN %d", id, tee[0]))
		}
	}
	for i := range qe.TcbLevels {
		if qe.TcbLevels[i].Tcb.Isvsvn <= qeSVN {
			t.QE = levelOf(&qe.TcbLevels[i])
			break
		}
	}
	if t.QE == nil {
		problems = append(problems, fmt.Sprintf("no TCB level of the QE identity matches the quoting enclave's ISV SVN %d", qeSVN))
	}
	if len(problems) > 0 {
		t.Problem = strings.Join(problems, "; ")
		return t
	}
	t.Status = pcs.TcbComponentStatusUpToDate
	for _, c := range t.components() {
		r, known := tcbStatusRank[c.level.Status]
		if !known {
			r = len(tcbStatusRank) // unknown statuses rank worst, and no policy accepts them
		}
		if r > tcbStatusRank[t.Status] {
			t.Status = c.level.Status
		}
	}
	return t
}

func sgxSVNsReach(have []byte, want []pcs.TcbComponent) bool {
	if len(have) != len(want) {
		return false
	}
	for i := range have {
		if have[i] < want[i].Svn {
			return false
		}
	}
	return true
}

// teeSVNsReach compares TEE_TCB_SVN with a level's TDX components; for module major versions above
// 0 the first two bytes identify the module, which the module identities rate instead.
func teeSVNsReach(have []byte, want []pcs.TcbComponent) bool {
	if len(have) != len(want) || len(have) < 2 {
		return false
	}
	start := 0
	if have[1] > 0 {
		start = 2
	}
	for i := start; i < len(have); i++ {
		if have[i] < want[i].Svn {
			return false
		}
	}
	return true
}

// checkQEIdentity compares the QE report with the QE identity as go-tdx-guest's verifyQeReport
// does, without the TCB status it demands. It runs only when go-tdx-guest stopped at the TD's TCB
// status, before reaching its own QE identity check.
func checkQEIdentity(r *pb.EnclaveReport, id *pcs.EnclaveIdentity) error {
	if len(id.MiscselectMask.Bytes) != 4 || len(id.Miscselect.Bytes) != 4 {
		return fmt.Errorf("QE identity MISCSELECT fields are not 4 bytes")
	}
	mask := binary.LittleEndian.Uint32(id.MiscselectMask.Bytes)
	if r.GetMiscSelect()&mask != binary.LittleEndian.Uint32(id.Miscselect.Bytes) {
		return fmt.Errorf("QE report MISCSELECT does not match the QE identity")
	}
	attrs := r.GetAttributes()
	if len(id.AttributesMask.Bytes) != len(attrs) {
		return fmt.Errorf("QE identity attributes mask is %d bytes, QE report attributes %d", len(id.AttributesMask.Bytes), len(attrs))
	}
	masked := make([]byte, len(attrs))
	for i := range attrs {
		masked[i] = attrs[i] & id.AttributesMask.Bytes[i]
	}
	if !bytes.Equal(masked, id.Attributes.Bytes) {
		return fmt.Errorf("QE report attributes do not match the QE identity")
	}
	if !bytes.Equal(r.GetMrSigner(), id.Mrsigner.Bytes) {
		return fmt.Errorf("QE report MRSIGNER does not match the QE identity")
	}
	if r.GetIsvProdId() != uint32(id.IsvProdID) {
		return fmt.Errorf("QE report ISV PRODID %d is not the QE identity's %d", r.GetIsvProdId(), id.IsvProdID)
	}
	return nil
}

// TD attribute bits (TDX module ABI, TDATTRIBUTES, little endian).
var tdAttributeBits = []struct {
	bit  uint
	name string
}{
	{0, "DEBUG"}, {28, "SEPT_VE_DISABLE"}, {29, "MIGRATABLE"}, {30, "PKS"}, {31, "KL"}, {62, "TPA"}, {63, "PERFMON"},
}

// TDAttributeNames decodes TDATTRIBUTES into the names of the bits set, "none" when none is.
func TDAttributeNames(a [8]byte) string {
	v := binary.LittleEndian.Uint64(a[:])
	var names []byte
	known := uint64(0)
	for _, b := range tdAttributeBits {
		known |= 1 << b.bit
		if v&(1<<b.bit) != 0 {
			if len(names) > 0 {
				names = append(names, ' ')
			}
			names = append(names, b.name...)
		}
	}
	if rest := v &^ known; rest != 0 {
		if len(names) > 0 {
			names = append(names, ' ')
		}
		names = fmt.Appendf(names, "other=%#x", rest)
	}
	if len(names) == 0 {
		return "none"
	}
	return string(names)
}
