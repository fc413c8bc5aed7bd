package contracts

import (
	"crypto/ed25519"
	"fmt"

	"github.com/tonkeeper/tongo/boc"
	"github.com/tonkeeper/tongo/tlb"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
)

// ProxyConfig is fixed when a proxy contract is deployed, copied from the registry then.
type ProxyConfig struct {
	Registry         ton.AccountID
	MinClientStake   uint64 // nanoTON
	ClientCloseDelay uint32 // seconds
	ProxyCloseDelay  uint32 // seconds
}

// ProxyStatus is the lifecycle of a proxy contract.
type ProxyStatus uint8

const (
	ProxyActive  ProxyStatus = 0
	ProxyClosing ProxyStatus = 1
	ProxyClosed  ProxyStatus = 2
)

func (s ProxyStatus) String() string {
	switch s {
	case ProxyActive:
		return "active"
	case ProxyClosing:
		return "closing"
	case ProxyClosed:
		return "closed"
	default:
		return fmt.Sprintf("status(%d)", uint8(s))
	}
}

// ClientAccount is a client's record in a proxy contract.
type ClientAccount struct {
	Balance   uint64 // deposited, not yet charged or returned
	Stake     uint64 // the minimum part of the deposit; with the balance, locked until ClosingAt
	Charged   uint64 // last accepted cumulative charged total
	Seqno     uint64 // last accepted sequence number
	ClosingAt uint32 // 0 unless closing: when balance and stake may leave
	Open      bool   // false once everything was returned
}

// WorkerAccount is a worker's record in a proxy contract.
type WorkerAccount struct {
	Paid  uint64 // last accepted cumulative earned total, all paid out
	Seqno uint64
}

// ProxyState is the proxy contract's whole state.
type ProxyState struct {
	Key         ed25519.PublicKey
	Owner       ton.AccountID
	Status      ProxyStatus
	CloseAt     uint32
	ProxyStake  uint64
	ClientFunds uint64
	OpenClients uint32
	Config      ProxyConfig
	Clients     map[ton.AccountID]ClientAccount
	Workers     map[ton.AccountID]WorkerAccount
}

type proxyConfigTLB struct {
	Registry         tlb.MsgAddress
	MinClientStake   tlb.Grams
	ClientCloseDelay tlb.Uint32
	ProxyCloseDelay  tlb.Uint32
}

type clientTLB struct {
	Balance   tlb.Grams
	Stake     tlb.Grams
	Charged   tlb.Grams
	Seqno     tlb.Uint64
	ClosingAt tlb.Uint32
	Open      bool
}

type workerTLB struct {
	Paid  tlb.Grams
	Seqno tlb.Uint64
}

type proxyTLB struct {
	ProxyKey    tlb.Bits256
	Owner       tlb.MsgAddress
	State       tlb.Uint2
	CloseAt     tlb.Uint32
	ProxyStake  tlb.Grams
	ClientFunds tlb.Grams
	OpenClients tlb.Uint32
	Config      tlb.Ref[proxyConfigTLB]
	Clients     tlb.HashmapE[tlb.InternalAddress, clientTLB]
	Workers     tlb.HashmapE[tlb.InternalAddress, workerTLB]
}

// ProxyData is the initial storage of a proxy contract; with the code it fixes the address,
// so one payment key and owner give one contract.
func ProxyData(key ed25519.PublicKey, owner ton.AccountID, cfg ProxyConfig) (*boc.Cell, error) {
	if len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("encode proxy data: key has %d bytes", len(key))
	}
	st := proxyTLB{ProxyKey: tlb.Bits256(key), Owner: owner.ToMsgAddress()}
	st.Config.Value = proxyConfigTLB{
		Registry: cfg.Registry.ToMsgAddress(), MinClientStake: tlb.Grams(cfg.MinClientStake),
		ClientCloseDelay: tlb.Uint32(cfg.ClientCloseDelay), ProxyCloseDelay: tlb.Uint32(cfg.ProxyCloseDelay),
	}
	c := boc.NewCell()
	if err := tlb.Marshal(c, st); err != nil {
		return nil, fmt.Errorf("encode proxy data: %w", err)
	}
	return c, nil
}

// Data encodes a whole proxy state as the contract's storage (ParseProxyData's inverse);
// tools and tests use it to build states, deployments use ProxyData.
func (p ProxyState) Data() (*boc.Cell, error) {
	if len(p.Key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("encode proxy state: key has %d bytes", len(p.Key))
	}
	st := proxyTLB{
		ProxyKey: tlb.Bits256(p.Key), Owner: p.Owner.ToMsgAddress(), State: tlb.Uint2(p.Status), CloseAt: tlb.Uint32(p.CloseAt),
		ProxyStake: tlb.Grams(p.ProxyStake), ClientFunds: tlb.Grams(p.ClientFunds), OpenClients: tlb.Uint32(p.OpenClients),
	}
	st.Config.Value = proxyConfigTLB{
		Registry: p.Config.Registry.ToMsgAddress(), MinClientStake: tlb.Grams(p.Config.MinClientStake),
		ClientCloseDelay: tlb.Uint32(p.Config.ClientCloseDelay), ProxyCloseDelay: tlb.Uint32(p.Config.ProxyCloseDelay),
	}
	ck := make([]tlb.InternalAddress, 0, len(p.Clients))
	cv := make([]clientTLB, 0, len(p.Clients))
	for id, a := range p.Clients {
		ck = append(ck, id.ToInternal())
		cv = append(cv, clientTLB{Balance: tlb.Grams(a.Balance), Stake: tlb.Grams(a.Stake), Charged: tlb.Grams(a.Charged),
			Seqno: tlb.Uint64(a.Seqno), ClosingAt: tlb.Uint32(a.ClosingAt), Open: a.Open})
	}
	st.Clients = tlb.NewHashmapE(ck, cv)
	wk := make([]tlb.InternalAddress, 0, len(p.Workers))
	wv := make([]workerTLB, 0, len(p.Workers))
	for id, a := range p.Workers {
		wk = append(wk, id.ToInternal())
		wv = append(wv, workerTLB{Paid: tlb.Grams(a.Paid), Seqno: tlb.Uint64(a.Seqno)})
	}
	st.Workers = tlb.NewHashmapE(wk, wv)
	c := boc.NewCell()
	if err := tlb.Marshal(c, st); err != nil {
		return nil, fmt.Errorf("encode proxy state: %w", err)
	}
	return c, nil
}

// ParseProxyData decodes a proxy contract's storage.
func ParseProxyData(data *boc.Cell) (ProxyState, error) {
	var st proxyTLB
	data.ResetCounters()
	if err := safeUnmarshal(data, &st); err != nil {
		return ProxyState{}, fmt.Errorf("decode proxy: %w", err)
	}
	owner, err := ton.AccountIDFromTlb(st.Owner)
	if err != nil || owner == nil {
		return ProxyState{}, fmt.Errorf("decode proxy owner: %v", err)
	}
	registry, err := ton.AccountIDFromTlb(st.Config.Value.Registry)
	if err != nil || registry == nil {
		return ProxyState{}, fmt.Errorf("decode proxy registry: %v", err)
	}
	key := make(ed25519.PublicKey, ed25519.PublicKeySize)
	copy(key, st.ProxyKey[:])
	out := ProxyState{
		Key: key, Owner: *owner, Status: ProxyStatus(st.State), CloseAt: uint32(st.CloseAt),
		ProxyStake: uint64(st.ProxyStake), ClientFunds: uint64(st.ClientFunds), OpenClients: uint32(st.OpenClients),
		Config: ProxyConfig{
			Registry: *registry, MinClientStake: uint64(st.Config.Value.MinClientStake),
			ClientCloseDelay: uint32(st.Config.Value.ClientCloseDelay), ProxyCloseDelay: uint32(st.Config.Value.ProxyCloseDelay),
		},
		Clients: map[ton.AccountID]ClientAccount{},
		Workers: map[ton.AccountID]WorkerAccount{},
	}
	ck, cv := st.Clients.Keys(), st.Clients.Values()
	for i := range ck {
		v := cv[i]
		out.Clients[ton.AccountID{Workchain: int32(ck[i].Workchain), Address: ck[i].Address}] = ClientAccount{
			Balance: uint64(v.Balance), Stake: uint64(v.Stake), Charged: uint64(v.Charged),
			Seqno: uint64(v.Seqno), ClosingAt: uint32(v.ClosingAt), Open: v.Open,
		}
	}
	wk, wv := st.Workers.Keys(), st.Workers.Values()
	for i := range wk {
		out.Workers[ton.AccountID{Workchain: int32(wk[i].Workchain), Address: wk[i].Address}] = WorkerAccount{
			Paid: uint64(wv[i].Paid), Seqno: uint64(wv[i].Seqno),
		}
	}
	return out, nil
}

// TopUpBody deposits the attached value minus OpFee for the sender; the stake is filled
// up to the minimum first.
func TopUpBody(queryID uint64) *boc.Cell { return header(OpTopUp, queryID) }

// SubmitStateBody carries a signed payment state; anyone may send it. For a worker-earned
// state the worker is paid the difference (plus the rest of the attached value).
func SubmitStateBody(queryID uint64, s settle.SignedState) (*boc.Cell, error) {
	st, err := s.State.Cell()
	if err != nil {
		return nil, err
	}
	c := header(OpSubmitState, queryID)
	if err := c.WriteBytes(s.Signature[:]); err != nil {
		return nil, fmt.Errorf("encode submit state: %w", err)
	}
	if err := c.AddRef(st); err != nil {
		return nil, fmt.Errorf("encode submit state: %w", err)
	}
	return c, nil
}

// ClientCloseBody starts closing the sender's account: balance and stake stay locked for the
// client close delay, during which the proxy can still submit charged states; only the change of
// the attached value comes back.
func ClientCloseBody(queryID uint64) *boc.Cell { return header(OpClientClose, queryID) }

// ClientWithdrawStakeBody returns what the charges left of the sender's balance and stake once
// its close delay passed.
func ClientWithdrawStakeBody(queryID uint64) *boc.Cell { return header(OpClientWithdrawStake, queryID) }

// ProxyAddStakeBody adds the attached value minus OpFee to the proxy's stake (owner only).
func ProxyAddStakeBody(queryID uint64) *boc.Cell { return header(OpProxyAddStake, queryID) }

// ProxyWithdrawBody sends amount of the proxy's free funds to the owner (owner only).
func ProxyWithdrawBody(queryID uint64, amount uint64) *boc.Cell {
	c := header(OpProxyWithdraw, queryID)
	_ = tlb.Marshal(c, tlb.Grams(amount)) // fits: header is 96 bits
	return c
}

// ProxyCloseBody starts closing the proxy (owner only).
func ProxyCloseBody(queryID uint64) *boc.Cell { return header(OpProxyClose, queryID) }

// ProxySettleClientBody returns a silent client's funds after the proxy's close delay (owner only).
func ProxySettleClientBody(queryID uint64, client ton.AccountID) *boc.Cell {
	c := header(OpProxySettleClient, queryID)
	_ = tlb.Marshal(c, client.ToMsgAddress())
	return c
}

// ProxyWithdrawStakeBody sends everything left to the owner once all clients are settled
// and the close delay passed (owner only).
func ProxyWithdrawStakeBody(queryID uint64) *boc.Cell { return header(OpProxyWithdrawStake, queryID) }
