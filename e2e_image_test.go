package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPrintImageStable: `cocoon worker --print-image` gives one image hash for one binary and
// measured configuration, whatever the ports and state directory, and a running worker presents
// exactly that hash to its proxy.
func TestPrintImageStable(t *testing.T) {
	bin := cocoonBinary(t)
	n := newNetwork(t)
	printImage := func(data string) string {
		t.Helper()
		args := []string{"worker", "--print-image", "--sim", "--allow-simulated", "--sim-dir", t.TempDir(),
			"--data", filepath.Join(t.TempDir(), data), "--proxies", freePort(t, "udp"), "--stats-listen", freePort(t, "tcp"),
			"--model", "cocoon-builtin"}
		out, err := exec.Command(bin, args...).Output()
		require.NoError(t, err, "cocoon %s", strings.Join(args, " "))
		lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		require.Len(t, lines, 1, "one line: %q", out)
		hash, label, _ := strings.Cut(lines[0], " ")
		assert.Len(t, hash, 64, "hex SHA-256")
		assert.Contains(t, label, "SIMULATED")
		return hash
	}
	first, second := printImage("first"), printImage("second")
	assert.Equal(t, first, second, "ports and state directories are not measured")

	n.worker("worker", "", "cocoon-builtin")
	n.workers(1)
	var st struct {
		Workers []struct {
			Image string `json:"image_hash"`
		} `json:"workers"`
	}
	require.NoError(t, getJSON("http://"+n.proxyWeb+"/jsonstats", &st))
	require.Len(t, st.Workers, 1)
	assert.Equal(t, first, st.Workers[0].Image, "the running worker presents the printed hash")

	out, err := exec.Command(bin, "worker", "--print-image", "--sim", "--model", "another-model",
		"--data", t.TempDir()).Output()
	require.NoError(t, err)
	other, _, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	assert.NotEqual(t, first, other, "the model is measured (and so is allow_simulated)")
}
