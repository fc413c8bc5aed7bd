package contracts

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"slices"

	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
)

// RegistryParams are the registry's price parameters, minimum stakes and close delays.
type RegistryParams struct {
	settle.Prices
	MinProxyStake    uint64 // nanoTON
	MinClientStake   uint64 // nanoTON
	ClientCloseDelay uint32 // seconds
	ProxyCloseDelay  uint32 // seconds
	// MaxCoefficient is the highest worker price coefficient a proxy may accept
	// (settle.CoefficientOne = 1.0x). Zero: the registry was written before the field existed;
	// CoefficientCap then says list price only.
	MaxCoefficient uint32
}

// DefaultMaxCoefficient is the default cap on a worker's price coefficient: 4.0x.
const DefaultMaxCoefficient = 4 * settle.CoefficientOne

// CoefficientCap is the highest worker coefficient a proxy may accept: MaxCoefficient, or
// list price (settle.CoefficientOne) when the registry does not say, so a missing cap never
// lets a worker charge more.
func (p RegistryParams) CoefficientCap() uint32 {
	if p.MaxCoefficient == 0 {
		return settle.CoefficientOne
	}
	return p.MaxCoefficient
}

// ProxyEntry is a proxy listed in the registry, keyed by its attested payment key.
type ProxyEntry struct {
	Key      ed25519.PublicKey
	Contract ton.AccountID
	// WorkerEndpoint is where workers connect, ClientEndpoint where clients do (host:port each,
	// at most MaxEndpointLen bytes; they may be equal). An entry written before client endpoints
	// existed reads with ClientEndpoint = WorkerEndpoint.
	WorkerEndpoint string
	ClientEndpoint string
}

// MaxEndpointLen is the longest endpoint a registry entry holds: the bytes of one cell.
const MaxEndpointLen = 127

// Registry is the registry contract's whole state.
type Registry struct {
	Owner        ton.AccountID
	Version      uint32
	Params       RegistryParams
	ProxyImages  [][32]byte // sorted
	WorkerImages [][32]byte // sorted
	Models       [][32]byte // sorted
	Proxies      []ProxyEntry
}

// ProxyImageAllowed reports whether a proxy image hash is allowed.
func (r Registry) ProxyImageAllowed(h [32]byte) bool { return contains(r.ProxyImages, h) }

// WorkerImageAllowed reports whether a worker image hash is allowed.
func (r Registry) WorkerImageAllowed(h [32]byte) bool { return contains(r.WorkerImages, h) }

// ModelAllowed reports whether a model weights digest is allowed.
func (r Registry) ModelAllowed(h [32]byte) bool { return contains(r.Models, h) }

// Proxy finds a proxy by its payment key.
func (r Registry) Proxy(key ed25519.PublicKey) (ProxyEntry, bool) {
	for _, p := range r.Proxies {
		if bytes.Equal(p.Key, key) {
			return p, true
		}
	}
	return ProxyEntry{}, false
}

// ProxyByEndpoint finds the proxy listed at endpoint, as its worker or its client endpoint
// (compared as written: host:port, no name resolution), so that whoever reached a proxy there can
// check it attests the payment key listed for it. It reports false when no proxy is listed there,
// and also when several are: which key belongs at that endpoint is then not known, and a check
// against one of them would be a guess.
func (r Registry) ProxyByEndpoint(endpoint string) (ProxyEntry, bool) {
	var found []ProxyEntry
	for _, p := range r.Proxies {
		if p.WorkerEndpoint == endpoint || p.ClientEndpoint == endpoint {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		return ProxyEntry{}, false
	}
	return found[0], true
}

func contains(list [][32]byte, h [32]byte) bool {
	_, found := slices.BinarySearchFunc(list, h, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return found
}

// List names one of the registry's allow-lists.
type List uint8

const (
	ListProxyImages  List = 0
	ListWorkerImages List = 1
	ListModels       List = 2
)

// paramsTLB is Params; Base is the layout before max_coefficient, which registries deployed then
// still hold (the registry contract stores the cell without reading it).
type paramsTLB struct {
	Base           paramsBaseTLB
	MaxCoefficient tlb.Uint32
}

type paramsBaseTLB struct {
	PricePerToken     tlb.Grams
	WorkerFeePerToken tlb.Grams
	PromptMult        tlb.Uint32
	CachedPromptMult  tlb.Uint32
	CompletionMult    tlb.Uint32
	ReasoningMult     tlb.Uint32
	MinProxyStake     tlb.Grams
	MinClientStake    tlb.Grams
	ClientCloseDelay  tlb.Uint32
	ProxyCloseDelay   tlb.Uint32
}

// UnmarshalTLB reads either layout: max_coefficient is read when its 32 bits are there.
func (t *paramsTLB) UnmarshalTLB(c *boc.Cell, d *tlb.Decoder) error {
	*t = paramsTLB{}
	if err := d.Unmarshal(c, &t.Base); err != nil {
		return err
	}
	if c.BitsAvailableForRead() == 0 {
		return nil
	}
	v, err := c.ReadUint(32)
	t.MaxCoefficient = tlb.Uint32(v)
	return err
}

type listsTLB struct {
	ProxyImages  tlb.HashmapE[tlb.Bits256, bool]
	WorkerImages tlb.HashmapE[tlb.Bits256, bool]
	Models       tlb.HashmapE[tlb.Bits256, bool]
}

// proxyInfoTLB is ProxyInfo. Entries written before the client endpoint existed have one ref.
type proxyInfoTLB struct {
	Contract       tlb.MsgAddress
	WorkerEndpoint tlb.Ref[rawBytes]
	ClientEndpoint tlb.Ref[rawBytes]
}

// UnmarshalTLB reads either layout: without a second ref the worker endpoint serves clients too.
func (t *proxyInfoTLB) UnmarshalTLB(c *boc.Cell, d *tlb.Decoder) error {
	*t = proxyInfoTLB{}
	if err := d.Unmarshal(c, &t.Contract); err != nil {
		return err
	}
	if err := d.Unmarshal(c, &t.WorkerEndpoint); err != nil {
		return err
	}
	if c.RefsAvailableForRead() == 0 {
		t.ClientEndpoint = t.WorkerEndpoint
		return nil
	}
	return d.Unmarshal(c, &t.ClientEndpoint)
}

type registryTLB struct {
	Owner   tlb.MsgAddress
	Version tlb.Uint32
	Params  tlb.Ref[paramsTLB]
	Lists   tlb.Ref[listsTLB]
	Proxies tlb.HashmapE[tlb.Bits256, tlb.Ref[proxyInfoTLB]]
}

// rawBytes is a byte string stored as the bits of one cell (at most 127 bytes).
type rawBytes []byte

func (b rawBytes) MarshalTLB(c *boc.Cell, _ *tlb.Encoder) error {
	if len(b) > MaxEndpointLen {
		return fmt.Errorf("%d bytes do not fit in one cell", len(b))
	}
	return c.WriteBytes(b)
}

func (b *rawBytes) UnmarshalTLB(c *boc.Cell, _ *tlb.Decoder) error {
	n := c.BitsAvailableForRead()
	if n%8 != 0 {
		return fmt.Errorf("%d bits is not whole bytes", n)
	}
	v, err := c.ReadBytes(n / 8)
	*b = v
	return err
}

func (p RegistryParams) tlb() paramsTLB {
	return paramsTLB{Base: paramsBaseTLB{
		PricePerToken: tlb.Grams(p.PricePerToken), WorkerFeePerToken: tlb.Grams(p.WorkerFeePerToken),
		PromptMult: tlb.Uint32(p.PromptMult), CachedPromptMult: tlb.Uint32(p.CachedPromptMult),
		CompletionMult: tlb.Uint32(p.CompletionMult), ReasoningMult: tlb.Uint32(p.ReasoningMult),
		MinProxyStake: tlb.Grams(p.MinProxyStake), MinClientStake: tlb.Grams(p.MinClientStake),
		ClientCloseDelay: tlb.Uint32(p.ClientCloseDelay), ProxyCloseDelay: tlb.Uint32(p.ProxyCloseDelay),
	}, MaxCoefficient: tlb.Uint32(p.MaxCoefficient)}
}

func (t paramsTLB) params() RegistryParams {
	b := t.Base
	return RegistryParams{
		Prices: settle.Prices{
			PricePerToken: uint64(b.PricePerToken), WorkerFeePerToken: uint64(b.WorkerFeePerToken),
			PromptMult: uint32(b.PromptMult), CachedPromptMult: uint32(b.CachedPromptMult),
			CompletionMult: uint32(b.CompletionMult), ReasoningMult: uint32(b.ReasoningMult),
		},
		MinProxyStake: uint64(b.MinProxyStake), MinClientStake: uint64(b.MinClientStake),
		ClientCloseDelay: uint32(b.ClientCloseDelay), ProxyCloseDelay: uint32(b.ProxyCloseDelay),
		MaxCoefficient: uint32(t.MaxCoefficient),
	}
}

func hashSet(list [][32]byte) tlb.HashmapE[tlb.Bits256, bool] {
	keys := make([]tlb.Bits256, len(list))
	vals := make([]bool, len(list))
	for i, h := range list {
		keys[i], vals[i] = h, true
	}
	return tlb.NewHashmapE(keys, vals)
}

func hashList(m tlb.HashmapE[tlb.Bits256, bool]) [][32]byte {
	var out [][32]byte // nil when empty, so decoded registries compare equal to built ones
	for _, k := range m.Keys() {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// RegistryData encodes r as the registry's storage, for deployment.
func RegistryData(r Registry) (*boc.Cell, error) {
	st := registryTLB{Owner: r.Owner.ToMsgAddress(), Version: tlb.Uint32(r.Version)}
	st.Params.Value = r.Params.tlb()
	st.Lists.Value = listsTLB{hashSet(r.ProxyImages), hashSet(r.WorkerImages), hashSet(r.Models)}
	keys := make([]tlb.Bits256, 0, len(r.Proxies))
	vals := make([]tlb.Ref[proxyInfoTLB], 0, len(r.Proxies))
	for _, p := range r.Proxies {
		info, err := p.tlb()
		if err != nil {
			return nil, fmt.Errorf("encode registry: %w", err)
		}
		keys = append(keys, tlb.Bits256(p.Key))
		vals = append(vals, tlb.Ref[proxyInfoTLB]{Value: info})
	}
	st.Proxies = tlb.NewHashmapE(keys, vals)
	c := boc.NewCell()
	if err := tlb.Marshal(c, st); err != nil {
		return nil, fmt.Errorf("encode registry: %w", err)
	}
	return c, nil
}

func (p ProxyEntry) tlb() (proxyInfoTLB, error) {
	if len(p.Key) != ed25519.PublicKeySize {
		return proxyInfoTLB{}, fmt.Errorf("proxy key has %d bytes", len(p.Key))
	}
	for _, ep := range []struct{ name, value string }{{"worker", p.WorkerEndpoint}, {"client", p.ClientEndpoint}} {
		if ep.value == "" {
			return proxyInfoTLB{}, fmt.Errorf("proxy %s endpoint is empty", ep.name)
		}
		if len(ep.value) > MaxEndpointLen {
			return proxyInfoTLB{}, fmt.Errorf("proxy %s endpoint longer than %d bytes", ep.name, MaxEndpointLen)
		}
	}
	return proxyInfoTLB{Contract: p.Contract.ToMsgAddress(),
		WorkerEndpoint: tlb.Ref[rawBytes]{Value: rawBytes(p.WorkerEndpoint)},
		ClientEndpoint: tlb.Ref[rawBytes]{Value: rawBytes(p.ClientEndpoint)}}, nil
}

// ParseRegistryData decodes the registry's storage.
func ParseRegistryData(data *boc.Cell) (Registry, error) {
	var st registryTLB
	data.ResetCounters()
	if err := safeUnmarshal(data, &st); err != nil {
		return Registry{}, fmt.Errorf("decode registry: %w", err)
	}
	owner, err := ton.AccountIDFromTlb(st.Owner)
	if err != nil || owner == nil {
		return Registry{}, fmt.Errorf("decode registry owner: %v", err)
	}
	r := Registry{
		Owner:        *owner,
		Version:      uint32(st.Version),
		Params:       st.Params.Value.params(),
		ProxyImages:  hashList(st.Lists.Value.ProxyImages),
		WorkerImages: hashList(st.Lists.Value.WorkerImages),
		Models:       hashList(st.Lists.Value.Models),
	}
	keys, vals := st.Proxies.Keys(), st.Proxies.Values()
	for i := range keys {
		addr, err := ton.AccountIDFromTlb(vals[i].Value.Contract)
		if err != nil || addr == nil {
			return Registry{}, fmt.Errorf("decode registry proxy contract: %v", err)
		}
		key := make(ed25519.PublicKey, ed25519.PublicKeySize)
		copy(key, keys[i][:])
		info := vals[i].Value
		r.Proxies = append(r.Proxies, ProxyEntry{Key: key, Contract: *addr,
			WorkerEndpoint: string(info.WorkerEndpoint.Value), ClientEndpoint: string(info.ClientEndpoint.Value)})
	}
	return r, nil
}

// SetParamsBody replaces the price parameters (owner only).
func SetParamsBody(queryID uint64, p RegistryParams) (*boc.Cell, error) {
	c := header(OpSetParams, queryID)
	ref := boc.NewCell()
	if err := tlb.Marshal(ref, p.tlb()); err != nil {
		return nil, fmt.Errorf("encode set params: %w", err)
	}
	if err := c.AddRef(ref); err != nil {
		return nil, fmt.Errorf("encode set params: %w", err)
	}
	return c, nil
}

// SetAllowedBody adds a hash to (allowed) or removes it from one allow-list (owner only).
func SetAllowedBody(queryID uint64, list List, hash [32]byte, allowed bool) (*boc.Cell, error) {
	c := header(OpSetAllowed, queryID)
	err := c.WriteUint(uint64(list), 8)
	if err == nil {
		err = c.WriteBytes(hash[:])
	}
	if err == nil {
		err = c.WriteBit(allowed)
	}
	if err != nil {
		return nil, fmt.Errorf("encode set allowed: %w", err)
	}
	return c, nil
}

// SetProxyBody lists a proxy, or removes the proxy with key when p is nil (owner only). Both
// endpoints must be given (the contract refuses an entry without them).
func SetProxyBody(queryID uint64, key ed25519.PublicKey, p *ProxyEntry) (*boc.Cell, error) {
	if len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("encode set proxy: key has %d bytes", len(key))
	}
	c := header(OpSetProxy, queryID)
	if err := c.WriteBytes(key); err != nil {
		return nil, fmt.Errorf("encode set proxy: %w", err)
	}
	if p == nil {
		return c, c.WriteBit(false)
	}
	info, err := p.tlb()
	if err != nil {
		return nil, fmt.Errorf("encode set proxy: %w", err)
	}
	ref := boc.NewCell()
	if err := tlb.Marshal(ref, info); err != nil {
		return nil, fmt.Errorf("encode set proxy: %w", err)
	}
	if err := c.WriteBit(true); err != nil {
		return nil, err
	}
	if err := c.AddRef(ref); err != nil {
		return nil, fmt.Errorf("encode set proxy: %w", err)
	}
	return c, nil
}

// ChangeOwnerBody hands the registry to a new owner (owner only).
func ChangeOwnerBody(queryID uint64, owner ton.AccountID) (*boc.Cell, error) {
	c := header(OpChangeOwner, queryID)
	if err := tlb.Marshal(c, owner.ToMsgAddress()); err != nil {
		return nil, fmt.Errorf("encode change owner: %w", err)
	}
	return c, nil
}

// DefaultParams are the registry parameters `cocoon demo` and `cocoon chain registry deploy`
// start from when no flag says otherwise: 20 nanoTON per adjusted token for clients, 16 for
// workers (a 20% proxy commission), cached prompt tokens at 0.25x and completion and
// reasoning tokens at 4x, a 10 TON proxy stake, a 1 TON client stake, one hour for a
// closing client, one day for a closing proxy, and worker coefficients up to 4.0x.
func DefaultParams() RegistryParams {
	return RegistryParams{
		Prices: settle.Prices{
			PricePerToken: 20, WorkerFeePerToken: 16,
			PromptMult: settle.MultiplierOne, CachedPromptMult: settle.MultiplierOne / 4,
			CompletionMult: 4 * settle.MultiplierOne, ReasoningMult: 4 * settle.MultiplierOne,
		},
		MinProxyStake:    10_000_000_000,
		MinClientStake:   1_000_000_000,
		ClientCloseDelay: 3600,
		ProxyCloseDelay:  86400,
		MaxCoefficient:   DefaultMaxCoefficient,
	}
}
