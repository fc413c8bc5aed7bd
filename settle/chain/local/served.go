package local

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// A process that holds a local chain file and serves it (`cocoon demo`, `cocoon chain serve`)
// writes the URL it serves at to URLFile(path), so that other processes, which cannot open the
// locked file, read the chain through it instead.

// URLFile is where the URL a local chain file is served at is written: beside it.
func URLFile(chainPath string) string { return chainPath + ".url" }

// WriteServedURL records that the chain file at chainPath is served at url; the returned
// function removes the record (when the serving stops).
func WriteServedURL(chainPath, url string) (remove func() error, err error) {
	f := URLFile(chainPath)
	if err := os.WriteFile(f, []byte(url+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("write served chain URL: %w", err)
	}
	return func() error {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}, nil
}

// ServedURL is the URL the chain file at chainPath was last recorded as served at; "" when no
// process recorded one. The record may be stale (a process killed outright leaves it): callers
// check the URL answers.
func ServedURL(chainPath string) string {
	b, err := os.ReadFile(URLFile(chainPath))
	if err != nil || len(b) > 1024 {
		return ""
	}
	u := strings.TrimSpace(string(b))
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return ""
	}
	return u
}
