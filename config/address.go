package config

import (
	"encoding/json"
	"fmt"

	"github.com/tonkeeper/tongo/ton"
	"go.yaml.in/yaml/v3"
)

// Address is a TON address, parsed where it is read (file, environment, flag) so that what
// runs never parses it again. The zero value is unset.
type Address struct {
	ton.AccountID
	Set bool
}

// ParseAddress reads a raw (0:…) or user-friendly TON address; "" is unset.
func ParseAddress(s string) (Address, error) {
	if s == "" {
		return Address{}, nil
	}
	a, err := ton.ParseAccountID(s)
	if err != nil {
		return Address{}, fmt.Errorf("%q is not a TON address", s)
	}
	return Address{AccountID: a, Set: true}, nil
}

// String is the raw form, or "" when unset.
func (a Address) String() string {
	if !a.Set {
		return ""
	}
	return a.ToRaw()
}

// UnmarshalYAML parses the address.
func (a *Address) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := ParseAddress(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*a = v
	return nil
}

// MarshalJSON writes the raw form ("" when unset), which the configuration digest covers.
func (a Address) MarshalJSON() ([]byte, error) { return json.Marshal(a.String()) }
