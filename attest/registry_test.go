package attest_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/attest"
	"github.com/cocoon-network/cocoon/attest/attesttest"
)

const testRegistry = "kQregistry"

// TestPolicyFromRegistry: the registry's lists and the local policy both have to accept a peer;
// the local policy narrows the registry and never widens it, and a refusal names the list the
// peer is missing from and how to be added.
func TestPolicyFromRegistry(t *testing.T) {
	wm, pm := attesttest.Measurements(attest.RoleWorker), attesttest.Measurements(attest.RoleProxy)
	worker, proxy := wm.ImageHash(), pm.ImageHash()
	other := [32]byte{0x11}
	var model [32]byte // attesttest.Claims' weights digest: sha256 of zeros
	otherModel := "sha256:" + strings.Repeat("22", 32)

	testCases := map[string]struct {
		role      attest.Role
		local     func(*attest.Policy)
		reg       attest.RegistryLists
		wantErr   error
		policyErr bool     // the refusal is a *PolicyError (may be told to the peer)
		wantMsg   []string // in the error
		wantFix   []string // in PolicyError.Fix
	}{
		"on the registry, local any": {role: attest.RoleWorker, reg: attest.RegistryLists{WorkerImages: [][32]byte{worker}, Models: [][32]byte{model}}},
		"on the registry and the local list": {role: attest.RoleWorker,
			local: images(attest.RoleWorker, worker.String()),
			reg:   attest.RegistryLists{WorkerImages: [][32]byte{other, worker}, Models: [][32]byte{model}}},
		"not on the registry, local any": {role: attest.RoleWorker,
			reg:     attest.RegistryLists{WorkerImages: [][32]byte{other}, Models: [][32]byte{model}},
			wantErr: attest.ErrImageNotAllowed, policyErr: true,
			wantMsg: []string{"worker image " + worker.String() + " is not on registry " + testRegistry + "'s worker list (version 7)"},
			wantFix: []string{`the owner adds it with "cocoon chain registry allow ` + testRegistry + " worker-image " + worker.String() + `"`}},
		"the local list does not widen the registry": {role: attest.RoleWorker,
			local:   images(attest.RoleWorker, worker.String()),
			reg:     attest.RegistryLists{WorkerImages: [][32]byte{other}, Models: [][32]byte{model}},
			wantErr: attest.ErrImageNotAllowed, policyErr: true,
			wantMsg: []string{"is not on registry " + testRegistry + "'s worker list"}},
		"the local list narrows the registry": {role: attest.RoleWorker,
			local:   images(attest.RoleWorker, attest.ImageHash(other).String()),
			reg:     attest.RegistryLists{WorkerImages: [][32]byte{other, worker}, Models: [][32]byte{model}},
			wantErr: attest.ErrImageNotAllowed, policyErr: true,
			wantMsg: []string{"is not in the local policy's roles.worker.image_hashes", "it is on registry " + testRegistry + "'s worker list, version 7"},
			wantFix: []string{"roles.worker.image_hashes"}},
		"on neither": {role: attest.RoleWorker,
			local:   images(attest.RoleWorker, attest.ImageHash(other).String()),
			reg:     attest.RegistryLists{Models: [][32]byte{model}},
			wantErr: attest.ErrImageNotAllowed, policyErr: true,
			wantMsg: []string{"not on registry", "nor in the local policy's roles.worker.image_hashes"},
			wantFix: []string{"cocoon chain registry allow", "then the refusing node's operator adds it"}},
		"an empty registry list allows nothing": {role: attest.RoleWorker, reg: attest.RegistryLists{Models: [][32]byte{model}},
			wantErr: attest.ErrImageNotAllowed, policyErr: true},
		"the proxy list does not admit workers": {role: attest.RoleWorker,
			reg:     attest.RegistryLists{ProxyImages: [][32]byte{worker}, Models: [][32]byte{model}},
			wantErr: attest.ErrImageNotAllowed, policyErr: true},
		"proxy on the registry": {role: attest.RoleProxy, reg: attest.RegistryLists{ProxyImages: [][32]byte{proxy}}},
		"proxy not on the registry": {role: attest.RoleProxy, reg: attest.RegistryLists{WorkerImages: [][32]byte{proxy}},
			wantErr: attest.ErrImageNotAllowed, policyErr: true,
			wantMsg: []string{"proxy image " + proxy.String() + " is not on registry " + testRegistry + "'s proxy list"},
			wantFix: []string{"proxy-image " + proxy.String()}},
		"model not on the registry": {role: attest.RoleWorker, reg: attest.RegistryLists{WorkerImages: [][32]byte{worker}, Models: [][32]byte{other}},
			wantErr: attest.ErrModelNotAllowed, policyErr: true,
			wantMsg: []string{"not on registry " + testRegistry + "'s model list (version 7)"},
			wantFix: []string{"allow " + testRegistry + " model sha256:" + strings.Repeat("00", 32)}},
		"the local model list narrows the registry": {role: attest.RoleWorker,
			local: func(p *attest.Policy) {
				rp := p.Roles[attest.RoleWorker]
				rp.ModelDigests = []string{otherModel}
				p.Roles[attest.RoleWorker] = rp
			},
			reg:     attest.RegistryLists{WorkerImages: [][32]byte{worker}, Models: [][32]byte{model}},
			wantErr: attest.ErrModelNotAllowed, policyErr: true, wantMsg: []string{"local policy's roles.worker.model_digests"}},
		"a role the local policy refuses stays refused": {role: attest.RoleWorker,
			local:   func(p *attest.Policy) { delete(p.Roles, attest.RoleWorker) },
			reg:     attest.RegistryLists{WorkerImages: [][32]byte{worker}, Models: [][32]byte{model}},
			wantErr: attest.ErrRoleNotAllowed},
		"allow_simulated only from the local policy": {role: attest.RoleWorker,
			local:   func(p *attest.Policy) { p.AllowSimulated = false },
			reg:     attest.RegistryLists{WorkerImages: [][32]byte{worker}, Models: [][32]byte{model}},
			wantErr: attest.ErrSimulatedNotAllowed},
		"clients are the local policy's": {role: attest.RoleClient, reg: attest.RegistryLists{}},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			require := require.New(t)
			local := attesttest.OpenPolicy()
			if tc.local != nil {
				tc.local(&local)
			}
			tc.reg.Address, tc.reg.Version = testRegistry, 7
			p, err := attest.PolicyFromRegistry(tc.reg, local)
			require.NoError(err)
			assert.Equal(local.AllowSimulated, p.AllowSimulated)
			require.NotNil(p.Registry)
			assert.Equal(testRegistry, p.Registry.Address)

			var ev attest.Evidence
			if tc.role == attest.RoleClient {
				ev = unquoted(t, tc.role)
			} else {
				ev = evidence(t, tc.role, attesttest.Quoter(t, attesttest.Measurements(tc.role)))
			}
			_, err = attesttest.Verifier(t, p).Verify(ev)
			if tc.wantErr == nil {
				require.NoError(err)
				return
			}
			require.ErrorIs(err, tc.wantErr)
			var pe *attest.PolicyError
			require.Equal(tc.policyErr, errors.As(err, &pe), "a PolicyError: %v", err)
			for _, s := range tc.wantMsg {
				assert.Contains(err.Error(), s)
			}
			for _, s := range tc.wantFix {
				assert.Contains(pe.Fix, s)
			}
		})
	}

	t.Run("the local policy is not changed", func(t *testing.T) {
		local := attesttest.OpenPolicy()
		_, err := attest.PolicyFromRegistry(attest.RegistryLists{}, local)
		require.NoError(t, err)
		assert.Nil(t, local.Registry)
		assert.Equal(t, attesttest.OpenPolicy(), local)
	})
}

func images(role attest.Role, hashes ...string) func(*attest.Policy) {
	return func(p *attest.Policy) {
		rp := p.Roles[role]
		rp.ImageHashes = hashes
		p.Roles[role] = rp
	}
}

func unquoted(t testing.TB, role attest.Role) attest.Evidence {
	c := attesttest.Claims(role)
	c.PublicKey = make([]byte, 32)
	enc, err := c.Encode()
	require.NoError(t, err)
	return attest.Evidence{Claims: enc, Key: c.PublicKey}
}

// TestSetPolicy: a new policy judges every verification from then on (a result cached under the
// old one is not reused), Recheck judges a peer verified before by it, and OnPolicyChange's
// functions run after each change until stopped.
func TestSetPolicy(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	v := attesttest.Verifier(t, attesttest.OpenPolicy())
	ev := evidence(t, attest.RoleWorker, attesttest.Quoter(t, attesttest.Measurements(attest.RoleWorker)))
	peer, err := v.Verify(ev)
	require.NoError(err)
	_, err = v.Verify(ev) // now cached
	require.NoError(err)
	require.NoError(v.Recheck(peer))

	var changes int
	stop := v.OnPolicyChange(func() { changes++ })
	narrowed, err := attest.PolicyFromRegistry(attest.RegistryLists{Address: testRegistry, Version: 8}, attesttest.OpenPolicy())
	require.NoError(err)
	require.NoError(v.SetPolicy(narrowed))
	assert.Equal(1, changes)
	assert.Equal(testRegistry, v.Policy().Registry.Address)

	_, err = v.Verify(ev)
	require.ErrorIs(err, attest.ErrImageNotAllowed, "the cached result of the old policy is not reused")
	err = v.Recheck(peer)
	require.ErrorIs(err, attest.ErrImageNotAllowed)
	var pe *attest.PolicyError
	require.ErrorAs(err, &pe)
	assert.Contains(pe.Error(), "version 8")

	bad := attesttest.OpenPolicy()
	bad.Roles["nobody"] = attest.RolePolicy{}
	require.Error(v.SetPolicy(bad))
	assert.Equal(1, changes, "an invalid policy changes nothing")
	assert.NotNil(v.Policy().Registry)

	stop()
	require.NoError(v.SetPolicy(attesttest.OpenPolicy()))
	assert.Equal(1, changes, "stopped")
	require.NoError(v.Recheck(peer))
}

func TestRecheck(t *testing.T) {
	ev := evidence(t, attest.RoleWorker, attesttest.Quoter(t, attesttest.Measurements(attest.RoleWorker)))
	testCases := map[string]struct {
		policy  func(*attest.Policy)
		wantErr error
	}{
		"unchanged":            {policy: func(*attest.Policy) {}},
		"role removed":         {policy: func(p *attest.Policy) { delete(p.Roles, attest.RoleWorker) }, wantErr: attest.ErrRoleNotAllowed},
		"simulated disallowed": {policy: func(p *attest.Policy) { p.AllowSimulated = false }, wantErr: attest.ErrSimulatedNotAllowed},
		"image removed":        {policy: images(attest.RoleWorker, strings.Repeat("11", 32)), wantErr: attest.ErrImageNotAllowed},
		"MRSEAM restricted":    {policy: func(p *attest.Policy) { p.MRSEAMs = []string{strings.Repeat("ee", 48)} }, wantErr: attest.ErrMeasurementMismatch},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			require := require.New(t)
			v := attesttest.Verifier(t, attesttest.OpenPolicy())
			peer, err := v.Verify(ev)
			require.NoError(err)
			p := attesttest.OpenPolicy()
			tc.policy(&p)
			require.NoError(v.SetPolicy(p))
			err = v.Recheck(peer)
			if tc.wantErr == nil {
				require.NoError(err)
				return
			}
			require.ErrorIs(err, tc.wantErr)
			var pe *attest.PolicyError
			require.ErrorAs(err, &pe, "a refusal of a verified peer is a PolicyError")
		})
	}
}
