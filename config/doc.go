// Package config is cocoon's configuration schema: the file format, the defaults, the COCOON_
// environment variables and command-line flags, their precedence (defaults → file → environment →
// flags) and validation. Values are parsed where they are read (durations, TON addresses), so
// what runs never parses them again. It opens no device, root of trust, chain or file besides the
// configuration itself: roles/node turns a Config into running roles.
package config
