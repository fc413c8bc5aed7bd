package bench

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseGCReport(t *testing.T) {
	r, err := parseGCReport([]byte("3\n" + memoryClasses()))
	require.NoError(t, err)
	assert.Equal(t, 3, r.count)
	for _, class := range []string{classStacks, classObjects, "/memory/classes/total:bytes"} {
		assert.NotZero(t, r.classes[class], class)
	}

	r, err = parseGCReport([]byte("0\n"))
	require.NoError(t, err)
	assert.Equal(t, gcReport{count: 0, classes: map[string]uint64{}}, r)

	for _, bad := range []string{"", "x\n", "1\n/memory/classes/heap/stacks:bytes\n", "1\n/memory/classes/heap/stacks:bytes -1\n"} {
		_, err := parseGCReport([]byte(bad))
		assert.ErrorContains(t, err, "gc file", "%q", bad)
	}
}
