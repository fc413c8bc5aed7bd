package statsweb

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestFormat(t *testing.T) {
	testCases := map[string]struct {
		got, want string
	}{
		"ton":               {got: TON(4480), want: "0.00000448 TON"},
		"whole ton":         {got: TON(2_000_000_000), want: "2 TON"},
		"nano":              {got: Nano(980_000_000), want: "980,000,000 nanoTON"},
		"num small":         {got: Num(999), want: "999"},
		"num not a number":  {got: Num(1.5), want: "1.5"},
		"num int64":         {got: Num(int64(-1234567)), want: "-1,234,567"},
		"num uint64 max":    {got: Num(^uint64(0)), want: "18,446,744,073,709,551,615"},
		"zero duration":     {got: Duration(0), want: "—"},
		"microseconds":      {got: Duration(340 * time.Microsecond), want: "340 µs"},
		"milliseconds":      {got: Duration(12500 * time.Microsecond), want: "12.5 ms"},
		"whole ms":          {got: Duration(3 * time.Millisecond), want: "3 ms"},
		"seconds":           {got: Duration(2400 * time.Millisecond), want: "2.4 s"},
		"whole seconds":     {got: Duration(8 * time.Second), want: "8 s"},
		"minutes":           {got: Duration(3*time.Minute + 12*time.Second), want: "3 min 12 s"},
		"hours":             {got: Duration(2*time.Hour + 5*time.Minute), want: "2 h 5 min"},
		"days":              {got: Duration(76 * time.Hour), want: "3 d 4 h"},
		"millis":            {got: Millis(1.25), want: "1.2 ms"},
		"rate zero":         {got: Rate(0), want: "0/s"},
		"rate slow":         {got: Rate(0.25), want: "0.25/s"},
		"rate":              {got: Rate(12.34), want: "12.3/s"},
		"rate fast":         {got: Rate(12345.6), want: "12,346/s"},
		"percent":           {got: Percent(1, 4), want: "25%"},
		"percent of none":   {got: Percent(1, 0), want: "—"},
		"or dash empty":     {got: OrDash(""), want: "—"},
		"or dash something": {got: OrDash("x"), want: "x"},
		"coefficient":       {got: Coefficient(1250), want: "1.25×"},
		"coefficient one":   {got: Coefficient(1000), want: "1×"},
		"multiplier":        {got: Multiplier(15000), want: "1.5×"},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.got)
		})
	}
}

func TestRates(t *testing.T) {
	assert := assert.New(t)
	var r Rates
	t0 := processStart.Add(10 * time.Second)
	per, over := r.Per(t0, 100, 1000)
	assert.Equal(10*time.Second, over, "first read: since the process started")
	assert.InDeltaSlice([]float64{10, 100}, per, 1e-9)

	per, over = r.Per(t0.Add(20*time.Second), 300, 3000)
	assert.Equal(30*time.Second, over, "in the process's first minute: since it started")
	assert.InDeltaSlice([]float64{10, 100}, per, 1e-9)

	// Later, views a second apart: the rate still covers at least rateMinSpan.
	t1 := processStart.Add(5 * time.Minute)
	per, over = r.Per(t1, 3000, 3000)
	assert.Equal(4*time.Minute+30*time.Second, over, "every sample is past the window: since the newest of them")
	assert.InDelta(10.0, per[0], 1e-9)
	per, over = r.Per(t1.Add(time.Second), 3000, 3000)
	assert.Equal(4*time.Minute+31*time.Second, over, "a sample a second old is no base")
	assert.Positive(per[0])

	// Views every second for two minutes: the rate covers about the last minute.
	for i := range 120 {
		r.Per(t1.Add(time.Duration(2+i)*time.Second), 3000, 3000)
	}
	per, over = r.Per(t1.Add(123*time.Second), 3060, 3000)
	assert.LessOrEqual(over, RateWindow+time.Second)
	assert.GreaterOrEqual(over, RateWindow)
	assert.InDelta(1.0, per[0], 0.05, "60 more in the last minute")
	assert.Zero(per[1])
	assert.LessOrEqual(len(r.samples), 62, "samples are bounded by the window")
}
