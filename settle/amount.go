package settle

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// ErrBadAmount is returned for amounts that are not a decimal number of TON with at most
// nine fractional digits.
var ErrBadAmount = errors.New("bad TON amount")

// ParseTON parses "1.5" (TON) into nanoTON exactly, without floating point.
func ParseTON(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" || len(frac) > 9 || strings.ContainsAny(s, "+-eE") {
		return 0, fmt.Errorf("%w: %q", ErrBadAmount, s)
	}
	n, ok := new(big.Int).SetString(whole+frac+strings.Repeat("0", 9-len(frac)), 10)
	if !ok || !n.IsUint64() {
		return 0, fmt.Errorf("%w: %q", ErrBadAmount, s)
	}
	return n.Uint64(), nil
}

// FormatTON prints nanoTON as TON with all nine decimals trimmed of trailing zeros.
func FormatTON(nano uint64) string {
	s := fmt.Sprintf("%d.%09d", nano/1e9, nano%1e9)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
