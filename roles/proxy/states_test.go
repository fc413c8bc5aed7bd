package proxy

import (
	"crypto/ed25519"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tonkeeper/tongo/ton"

	"github.com/cocoon-network/cocoon/settle"
	"github.com/cocoon-network/cocoon/settle/ledger"
	"github.com/cocoon-network/cocoon/transport"
)

// sentState is one delivery a test stateSender made.
type sentState struct {
	conn *transport.Conn
	st   settle.State
}

// testStateSender records deliveries and holds the interval timers for the test to fire.
type testStateSender struct {
	*stateSender
	mu     sync.Mutex
	sent   []sentState
	timers []func()
}

func newTestStateSender() *testStateSender {
	ts := &testStateSender{stateSender: &stateSender{interval: time.Hour, slots: map[stateKey]*stateSlot{}}}
	ts.deliver = func(conn *transport.Conn, st ledger.Committed) {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		ts.sent = append(ts.sent, sentState{conn, st.State()})
	}
	ts.after = func(_ time.Duration, f func()) {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		ts.timers = append(ts.timers, f)
	}
	return ts
}

// fire ends every interval open now.
func (ts *testStateSender) fire() {
	ts.mu.Lock()
	fs := ts.timers
	ts.timers = nil
	ts.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

func (ts *testStateSender) seqnos(kind settle.Kind) []uint64 {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var out []uint64
	for _, s := range ts.sent {
		if s.st.Kind == kind {
			out = append(out, s.st.Seqno)
		}
	}
	return out
}

// committed commits n requests of one client and worker and returns their receipts.
func committed(t *testing.T, n int) []ledger.Receipt {
	_, key, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	l := testLedger(t, key)
	client, worker := ton.AccountID{Address: [32]byte{1}}, ton.AccountID{Address: [32]byte{2}}
	require.NoError(t, l.Deposit(client, 1<<40, 0))
	var out []ledger.Receipt
	for range n {
		r, err := l.Reserve(client, 100)
		require.NoError(t, err)
		rc, err := l.Settle(r, worker, 100, 80)
		require.NoError(t, err)
		out = append(out, rc)
	}
	return out
}

// TestStateSenderNewestPerInterval: a burst of requests ending together costs one signed state at
// once and one for the newest when the interval ends, not one per request; a quiet party's next
// state leaves at once.
func TestStateSenderNewestPerInterval(t *testing.T) {
	assert := assert.New(t)
	rcs := committed(t, 12)
	ts := newTestStateSender()
	conn := new(transport.Conn)
	for _, rc := range rcs[:10] {
		ts.send(conn, rc.ClientState)
		ts.send(conn, rc.WorkerState)
	}
	assert.Equal([]uint64{1}, ts.seqnos(settle.KindClientCharged), "the first leaves at once")
	assert.Equal([]uint64{1}, ts.seqnos(settle.KindWorkerEarned))

	ts.fire()
	assert.Equal([]uint64{1, 10}, ts.seqnos(settle.KindClientCharged), "the newest leaves when the interval ends")
	assert.Equal([]uint64{1, 10}, ts.seqnos(settle.KindWorkerEarned))

	ts.fire() // an interval with nothing new: the party is forgotten
	assert.Empty(ts.slots)
	ts.send(conn, rcs[10].ClientState)
	assert.Equal([]uint64{1, 10, 11}, ts.seqnos(settle.KindClientCharged), "after a quiet interval a total leaves at once")
}

// TestStateSenderNeverOlder: totals of concurrent requests arriving out of order never make a
// party receive a lower sequence number than one it was sent.
func TestStateSenderNeverOlder(t *testing.T) {
	rcs := committed(t, 5)
	ts := newTestStateSender()
	conn := new(transport.Conn)
	ts.send(conn, rcs[3].ClientState) // seqno 4 leaves at once
	ts.send(conn, rcs[1].ClientState) // 2: older than what was sent
	ts.send(conn, rcs[4].ClientState) // 5
	ts.send(conn, rcs[2].ClientState) // 3: older than what waits
	ts.fire()
	ts.fire()
	assert.Equal(t, []uint64{4, 5}, ts.seqnos(settle.KindClientCharged))
}

// TestStateSenderPerConnection: each connection of a party gets its own states.
func TestStateSenderPerConnection(t *testing.T) {
	rcs := committed(t, 2)
	ts := newTestStateSender()
	a, b := new(transport.Conn), new(transport.Conn)
	ts.send(a, rcs[0].ClientState)
	ts.send(b, rcs[1].ClientState)
	require.Len(t, ts.sent, 2)
	assert.Equal(t, a, ts.sent[0].conn)
	assert.Equal(t, b, ts.sent[1].conn)
}
