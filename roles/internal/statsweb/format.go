package statsweb

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/cocoon-network/cocoon/settle"
)

// Funcs are the formatting functions every role's page template may use: amounts in TON with
// their nanoTON, human durations, rates per second and grouped digits.
var Funcs = template.FuncMap{
	"ton":    TON,
	"nano":   Nano,
	"dur":    Duration,
	"ms":     Millis,
	"rate":   Rate,
	"num":    Num,
	"since":  Since,
	"pct":    Percent,
	"yesno":  YesNo,
	"orDash": OrDash,
	"coef":   Coefficient,
	"mult":   Multiplier,
}

// Multiplier is a price multiplier, where settle.MultiplierOne is 1.0×.
func Multiplier(m uint32) string {
	return trim(fmt.Sprintf("%.4f", float64(m)/settle.MultiplierOne)) + "×"
}

// Coefficient is a price coefficient or multiplier, where 1000 is 1.0×: "1.25×".
func Coefficient(c uint32) string { return trim(fmt.Sprintf("%.3f", float64(c)/1000)) + "×" }

// TON is an amount of nanoTON in TON, as `cocoon chain` prints it: "0.0000045 TON".
func TON(nano uint64) string { return settle.FormatTON(nano) + " TON" }

// Nano is an amount in nanoTON with grouped digits: "4,480 nanoTON".
func Nano(nano uint64) string { return Num(nano) + " nanoTON" }

// Num groups the digits of an integer by thousands: 1234567 → "1,234,567". Anything else is
// printed as it is.
func Num(v any) string {
	s := fmt.Sprint(v)
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return s
	}
	var b strings.Builder
	if len(digits) < len(s) {
		b.WriteByte('-')
	}
	for i, c := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Duration is d for a person: "340 µs", "12.5 ms", "2.4 s", "3 min 12 s", "2 h 5 min", "3 d 4 h".
// Zero is "—": nothing measured yet.
func Duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < time.Second:
		return trim(fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))) + " ms"
	case d < time.Minute:
		return trim(fmt.Sprintf("%.2f", d.Seconds())) + " s"
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 24*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%d d %d h", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

// Millis is a duration given in (fractional) milliseconds, as the percentiles are kept.
func Millis(ms float64) string { return Duration(time.Duration(ms * float64(time.Millisecond))) }

// Since is how long ago t was; "—" for the zero time.
func Since(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return Duration(time.Since(t).Round(time.Second))
}

// Rate is a count per second: "12.3/s", with more digits below 1.
func Rate(perSecond float64) string {
	switch {
	case perSecond == 0:
		return "0/s"
	case perSecond < 1:
		return trim(fmt.Sprintf("%.3f", perSecond)) + "/s"
	case perSecond < 100:
		return trim(fmt.Sprintf("%.1f", perSecond)) + "/s"
	}
	return Num(int64(perSecond+0.5)) + "/s"
}

// Percent is part of whole, "—" when whole is zero.
func Percent(part, whole int64) string {
	if whole <= 0 {
		return "—"
	}
	return fmt.Sprintf("%d%%", part*100/whole)
}

// YesNo is "yes" or "no".
func YesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// OrDash is s, or "—" when it is empty.
func OrDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func trim(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
