// Package config holds cocoon's configuration: the file schema, defaults, environment variables,
// command-line flags, their precedence (defaults → file → environment → flags) and validation, and
// the conversion into the plain per-role structs the role packages take. Besides main, it is the
// only package that imports urfave/cli.
package config
