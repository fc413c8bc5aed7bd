// Package ledger is the proxy's durable account book: per client what was deposited, charged and
// is reserved; per worker what was earned and paid; and the sequence numbers of the payment states
// the proxy signs. It lives in a bbolt file (chosen over pebble: one file, ACID transactions with
// fsync on commit, no background compaction, and Batch to group the commits of concurrent requests).
//
// Money moves only in Settle, which in one transaction charges the client, credits the worker,
// advances both sequence numbers and records both new totals; signed states are made only from
// what was committed (Committed), after the commit. So after a crash (kill -9 included) every
// state the proxy ever signed is at or below the recovered ledger: nothing is lost or doubled.
// Reservations are in memory: they are promises about requests in flight, which die with the
// process, and nothing was charged for them.
//
// The bound that keeps a client from leaving before it is charged: a client's unsettled amount
// (what this ledger charged beyond what the chain accepted as charged, plus what is reserved) never
// exceeds what the proxy contract still locks for it (balance + stake). Reserve refuses what would
// cross it, and refuses a client that is closing, whose funds leave after the close delay; the
// meter submits the client's charged state before the bound is reached.
package ledger

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tonkeeper/tongo/ton"
	bolt "go.etcd.io/bbolt"

	"github.com/cocoon-network/cocoon/settle"
)

// Errors callers branch on.
var (
	// ErrInsufficientFunds: the client's available balance cannot cover the reservation, or the
	// reservation would let unsettled charges exceed what the chain locks for the client.
	ErrInsufficientFunds = errors.New("insufficient funds")
	// ErrRollback: a party holds a state this ledger has not reached: the ledger was rolled back
	// (restored from an old copy) and must not sign again until that is resolved.
	ErrRollback = errors.New("ledger is behind a state it signed")
)

var (
	bucketClients = []byte("clients")
	bucketWorkers = []byte("workers")
)

// Client is one client's account. Available = Deposited − Charged − Reserved, within the bound
// Unsettled + Reserved ≤ Locked.
type Client struct {
	Deposited uint64 `json:"deposited"` // what can be charged in all: balance on chain + Settled
	Stake     uint64 `json:"stake"`     // stake on chain: locked with the balance, never spent
	Settled   uint64 `json:"settled"`   // charged total the chain accepted
	Closing   bool   `json:"closing"`   // the account is closing (or closed) on chain
	Charged   uint64 `json:"charged"`   // charged total this ledger signed
	Reserved  uint64 `json:"reserved"`
	Seqno     uint64 `json:"seqno"`
}

// Available is what the client can still spend: nothing while closing, else its balance less
// unsettled charges and reservations, and never beyond the bound.
func (c Client) Available() uint64 {
	if c.Closing {
		return 0
	}
	spent := c.Charged + c.Reserved
	if spent >= c.Deposited {
		return 0
	}
	return min(c.Deposited-spent, c.room())
}

// Locked is what the proxy contract still holds for the client: balance + stake.
func (c Client) Locked() uint64 {
	if c.Deposited < c.Settled {
		return c.Stake // a chain reading that makes no sense: count the balance as gone
	}
	return c.Deposited - c.Settled + c.Stake
}

// Unsettled is what the ledger charged that the chain has not yet accepted as charged.
func (c Client) Unsettled() uint64 {
	if c.Charged <= c.Settled {
		return 0
	}
	return c.Charged - c.Settled
}

// room is how much more may be reserved within the bound Unsettled + Reserved ≤ Locked.
func (c Client) room() uint64 {
	used := c.Unsettled() + c.Reserved
	if locked := c.Locked(); used < locked {
		return locked - used
	}
	return 0
}

// Worker is one worker owner's account.
type Worker struct {
	Earned uint64 `json:"earned"`
	Paid   uint64 `json:"paid"`
	Seqno  uint64 `json:"seqno"`
}

// Ledger is the proxy's account book. Every account is held in memory (10,000 clients are a few
// hundred kilobytes) and written through to bbolt; checks and reservations read memory only.
type Ledger struct {
	db    *bolt.DB
	proxy ton.AccountID
	key   ed25519.PrivateKey

	mu      sync.Mutex
	clients map[ton.AccountID]*Client
	workers map[ton.AccountID]*Worker
}

// Options tune a ledger.
type Options struct {
	// NoSync skips fsync on commit. A killed process loses nothing either way (the page cache
	// survives it); only a power cut does. For tests and benchmarks, never for a real proxy.
	NoSync bool
}

// Open opens (creating) the ledger at path for the proxy contract proxy, signing with key.
func Open(path string, proxy ton.AccountID, key ed25519.PrivateKey, opts Options) (*Ledger, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoSync: opts.NoSync})
	if err != nil {
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}
	// Concurrent requests that end within a millisecond share one commit; a lone request waits at
	// most that long (bbolt's default of 10ms would add to every answer's tail).
	db.MaxBatchDelay = time.Millisecond
	l := &Ledger{db: db, proxy: proxy, key: key, clients: map[ton.AccountID]*Client{}, workers: map[ton.AccountID]*Worker{}}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketClients, bucketWorkers} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketClients).ForEach(func(k, v []byte) error {
			id, err := decodeID(k)
			c := decodeClient(v)
			l.clients[id] = &c
			return err
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketWorkers).ForEach(func(k, v []byte) error {
			id, err := decodeID(k)
			w := decodeWorker(v)
			l.workers[id] = &w
			return err
		})
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("load ledger: %w", err)
	}
	return l, nil
}

// Close closes the file.
func (l *Ledger) Close() error { return l.db.Close() }

// Proxy is the proxy contract the ledger's states are for.
func (l *Ledger) Proxy() ton.AccountID { return l.proxy }

func (l *Ledger) client(id ton.AccountID) *Client {
	c, ok := l.clients[id]
	if !ok {
		c = &Client{}
		l.clients[id] = c
	}
	return c
}

func (l *Ledger) worker(id ton.AccountID) *Worker {
	w, ok := l.workers[id]
	if !ok {
		w = &Worker{}
		l.workers[id] = w
	}
	return w
}

// persist writes the current in-memory accounts of client and worker. Writing the latest values
// rather than the caller's own makes commits commute: whichever transaction lands last leaves the
// newest totals on disk.
func (l *Ledger) persist(client, worker *ton.AccountID) error {
	return l.db.Batch(func(tx *bolt.Tx) error {
		l.mu.Lock()
		var c Client
		var w Worker
		if client != nil {
			c = *l.client(*client)
		}
		if worker != nil {
			w = *l.worker(*worker)
		}
		l.mu.Unlock()
		if client != nil {
			if err := putClient(tx, *client, c); err != nil {
				return err
			}
		}
		if worker != nil {
			return putWorker(tx, *worker, w)
		}
		return nil
	})
}

// OnChain is what the proxy contract holds for a client, as one reading of it says.
type OnChain struct {
	Balance uint64 // deposited, not yet charged or returned
	Stake   uint64
	Charged uint64 // the charged total the contract accepted
	Closing bool   // closing or closed: the funds leave after the close delay
}

// Observe records a reading of the client's account on the proxy contract. Seeing the same
// figures twice changes nothing.
func (l *Ledger) Observe(client ton.AccountID, a OnChain) error {
	return l.record(client, a.Balance+a.Charged, a.Stake, a.Charged, a.Closing)
}

// Deposit records what a client can be charged in all (deposited) and its stake, for an account
// on which nothing was charged on chain yet; Observe records a full reading.
func (l *Ledger) Deposit(client ton.AccountID, deposited, stake uint64) error {
	return l.record(client, deposited, stake, 0, false)
}

func (l *Ledger) record(client ton.AccountID, deposited, stake, settled uint64, closing bool) error {
	l.mu.Lock()
	c := l.client(client)
	changed := deposited != c.Deposited || stake != c.Stake || settled != c.Settled || closing != c.Closing
	c.Deposited, c.Stake, c.Settled, c.Closing = deposited, stake, settled, closing
	l.mu.Unlock()
	if !changed {
		return nil
	}
	if err := l.persist(&client, nil); err != nil {
		return fmt.Errorf("record deposit: %w", err)
	}
	return nil
}

// Reservation is money set aside for one request in flight.
type Reservation struct {
	Client ton.AccountID
	Amount uint64
}

// Reserve sets amount aside from client's available balance, or fails with ErrInsufficientFunds
// (saying what to do). Concurrent reservations never overdraw: check and reservation happen
// under one lock.
func (l *Ledger) Reserve(client ton.AccountID, amount uint64) (Reservation, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.client(client)
	if c.Closing {
		return Reservation{}, fmt.Errorf("%w: the client account is closing on the proxy contract; after the close delay take the rest back with `cocoon chain client withdraw-stake` and top up to use it again",
			ErrInsufficientFunds)
	}
	if avail := c.Available(); avail < amount {
		if c.Unsettled() > 0 {
			return Reservation{}, fmt.Errorf("%w: request may cost up to %d nanoTON, available %d with %d nanoTON charged but not yet settled on chain; top up the deposit or wait for the proxy to settle",
				ErrInsufficientFunds, amount, avail, c.Unsettled())
		}
		return Reservation{}, fmt.Errorf("%w: request may cost up to %d nanoTON, available %d; top up the deposit", ErrInsufficientFunds, amount, avail)
	}
	c.Reserved += amount
	return Reservation{Client: client, Amount: amount}, nil
}

// Release returns an unused reservation.
func (l *Ledger) Release(r Reservation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.client(r.Client)
	c.Reserved -= min(c.Reserved, r.Amount)
}

// Receipt is what Settle committed.
type Receipt struct {
	Charged     uint64 // charged to the client for this request (≤ the reservation)
	Earned      uint64 // earned by the worker for this request
	ClientState Committed
	WorkerState Committed
}

// Committed is a party's new cumulative total as Settle committed it: only a committed total is
// signed, so after a crash every state the proxy handed out is at or below the recovered ledger.
// Signing is left to the caller, who may sign only the newest of many (totals are cumulative).
type Committed struct {
	state settle.State
	key   ed25519.PrivateKey
}

// State is the committed total.
func (c Committed) State() settle.State { return c.state }

// Sign signs the committed total with the proxy's payment key.
func (c Committed) Sign() (settle.SignedState, error) { return settle.Sign(c.state, c.key) }

// Settle ends a request: it charges the client charge (capped at the reservation, so a client is
// never charged more than it agreed to risk), credits worker with earn (capped at the charge, so
// the proxy never pays out more than it takes), releases the reservation and returns both new
// cumulative totals once they are committed. Reservation and charge swap in one step, so a
// concurrent Reserve never sees the money twice.
func (l *Ledger) Settle(r Reservation, worker ton.AccountID, charge, earn uint64) (Receipt, error) {
	charge = min(charge, r.Amount)
	earn = min(earn, charge)
	l.mu.Lock()
	c := l.client(r.Client)
	w := l.worker(worker)
	c.Reserved -= min(c.Reserved, r.Amount)
	c.Charged += charge
	c.Seqno++
	w.Earned += earn
	w.Seqno++
	cs := settle.State{Proxy: l.proxy, Party: r.Client, Kind: settle.KindClientCharged, Seqno: c.Seqno, Total: c.Charged}
	ws := settle.State{Proxy: l.proxy, Party: worker, Kind: settle.KindWorkerEarned, Seqno: w.Seqno, Total: w.Earned}
	l.mu.Unlock()

	rc := Receipt{Charged: charge, Earned: earn}
	if err := l.persist(&r.Client, &worker); err != nil {
		// Nothing is handed out: the totals in memory are ahead of the disk, and the proxy must stop.
		return rc, fmt.Errorf("settle request: %w", err)
	}
	rc.ClientState, rc.WorkerState = Committed{cs, l.key}, Committed{ws, l.key}
	return rc, nil
}

// Paid records a worker's cumulative payout as seen on chain.
func (l *Ledger) Paid(worker ton.AccountID, paid uint64) error {
	l.mu.Lock()
	w := l.worker(worker)
	changed := paid > w.Paid
	w.Paid = max(w.Paid, paid)
	l.mu.Unlock()
	if !changed {
		return nil
	}
	return l.persist(nil, &worker)
}

// Client returns a client's account.
func (l *Ledger) Client(id ton.AccountID) (Client, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.clients[id]; ok {
		return *c, nil
	}
	return Client{}, nil
}

// Worker returns a worker's account.
func (l *Ledger) Worker(id ton.AccountID) (Worker, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w, ok := l.workers[id]; ok {
		return *w, nil
	}
	return Worker{}, nil
}

// Current signs the party's current total of kind again (for a party that asks for it); the
// signature of an unchanged state is the same every time.
func (l *Ledger) Current(party ton.AccountID, kind settle.Kind) (settle.SignedState, error) {
	st := settle.State{Proxy: l.proxy, Party: party, Kind: kind}
	switch kind {
	case settle.KindClientCharged:
		c, _ := l.Client(party)
		st.Seqno, st.Total = c.Seqno, c.Charged
	case settle.KindWorkerEarned:
		w, _ := l.Worker(party)
		st.Seqno, st.Total = w.Seqno, w.Earned
	default:
		return settle.SignedState{}, fmt.Errorf("current state: unknown kind %d", kind)
	}
	return settle.Sign(st, l.key)
}

// Check compares a state a party holds with the ledger: a state ahead of the ledger (higher
// sequence number or total) means the ledger lost commits it once signed.
func (l *Ledger) Check(s settle.State) error {
	if s.Proxy != l.proxy {
		return nil // another proxy's state says nothing about this ledger
	}
	var seqno, total uint64
	switch s.Kind {
	case settle.KindClientCharged:
		c, _ := l.Client(s.Party)
		seqno, total = c.Seqno, c.Charged
	case settle.KindWorkerEarned:
		w, _ := l.Worker(s.Party)
		seqno, total = w.Seqno, w.Earned
	default:
		return fmt.Errorf("check state: unknown kind %d", s.Kind)
	}
	if s.Seqno > seqno || s.Total > total {
		return fmt.Errorf("%w: %s of %s at seqno %d total %d, ledger at seqno %d total %d",
			ErrRollback, s.Kind, s.Party.ToRaw(), s.Seqno, s.Total, seqno, total)
	}
	return nil
}

// Totals are the whole book: Σ charged, Σ earned, and the commission between them.
type Totals struct {
	Charged    uint64 `json:"charged"`
	Earned     uint64 `json:"earned"`
	Commission uint64 `json:"commission"`
}

// Unsettled returns the clients with charges the chain has not accepted yet.
func (l *Ledger) Unsettled() map[ton.AccountID]Client {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[ton.AccountID]Client{}
	for id, c := range l.clients {
		if c.Unsettled() > 0 {
			out[id] = *c
		}
	}
	return out
}

// Snapshot returns every account and the totals.
func (l *Ledger) Snapshot() (map[ton.AccountID]Client, map[ton.AccountID]Worker, Totals, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	clients := make(map[ton.AccountID]Client, len(l.clients))
	workers := make(map[ton.AccountID]Worker, len(l.workers))
	var t Totals
	for id, c := range l.clients {
		clients[id] = *c
		t.Charged += c.Charged
	}
	for id, w := range l.workers {
		workers[id] = *w
		t.Earned += w.Earned
	}
	t.Commission = t.Charged - t.Earned
	return clients, workers, t, nil
}

// Storage: key = workchain (4 bytes) || address (32 bytes); values fixed-width big-endian.

func idKey(id ton.AccountID) []byte {
	k := make([]byte, 36)
	binary.BigEndian.PutUint32(k, uint32(id.Workchain))
	copy(k[4:], id.Address[:])
	return k
}

func decodeID(k []byte) (ton.AccountID, error) {
	if len(k) != 36 {
		return ton.AccountID{}, fmt.Errorf("ledger: bad account key of %d bytes", len(k))
	}
	var id ton.AccountID
	id.Workchain = int32(binary.BigEndian.Uint32(k))
	copy(id.Address[:], k[4:])
	return id, nil
}

// A client is deposited, stake, charged, seqno, then settled and closing (a record of 32 bytes
// is from before those two: it reads as nothing settled, not closing, until the meter's next
// reading of the chain).
func putClient(tx *bolt.Tx, id ton.AccountID, c Client) error {
	v := make([]byte, 41)
	binary.BigEndian.PutUint64(v[0:], c.Deposited)
	binary.BigEndian.PutUint64(v[8:], c.Stake)
	binary.BigEndian.PutUint64(v[16:], c.Charged)
	binary.BigEndian.PutUint64(v[24:], c.Seqno)
	binary.BigEndian.PutUint64(v[32:], c.Settled)
	if c.Closing {
		v[40] = 1
	}
	return tx.Bucket(bucketClients).Put(idKey(id), v)
}

func decodeClient(v []byte) Client {
	if len(v) != 32 && len(v) != 41 {
		return Client{}
	}
	c := Client{Deposited: binary.BigEndian.Uint64(v[0:]), Stake: binary.BigEndian.Uint64(v[8:]),
		Charged: binary.BigEndian.Uint64(v[16:]), Seqno: binary.BigEndian.Uint64(v[24:])}
	if len(v) == 41 {
		c.Settled, c.Closing = binary.BigEndian.Uint64(v[32:]), v[40] != 0
	}
	return c
}

func putWorker(tx *bolt.Tx, id ton.AccountID, w Worker) error {
	v := make([]byte, 24)
	binary.BigEndian.PutUint64(v[0:], w.Earned)
	binary.BigEndian.PutUint64(v[8:], w.Paid)
	binary.BigEndian.PutUint64(v[16:], w.Seqno)
	return tx.Bucket(bucketWorkers).Put(idKey(id), v)
}

func decodeWorker(v []byte) Worker {
	if len(v) != 24 {
		return Worker{}
	}
	return Worker{Earned: binary.BigEndian.Uint64(v[0:]), Paid: binary.BigEndian.Uint64(v[8:]), Seqno: binary.BigEndian.Uint64(v[16:])}
}
