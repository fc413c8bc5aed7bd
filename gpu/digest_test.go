package gpu_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cocoon-network/cocoon/gpu"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.New(t).NoError(os.MkdirAll(filepath.Dir(p), 0o755))
		require.New(t).NoError(os.WriteFile(p, []byte(content), 0o644))
	}
	return dir
}

func TestWeightsDigest(t *testing.T) {
	base := map[string]string{
		"config.json":                "{}",
		"model-00001.safetensors":    "weights one",
		"model-00002.safetensors":    "weights two",
		"tokenizer/tokenizer.json":   "tok",
		"tokenizer/special_map.json": "",
	}
	with := func(change func(m map[string]string)) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		change(m)
		return m
	}
	baseDigest, err := gpu.WeightsDigest(writeTree(t, base), nil)
	require.New(t).NoError(err)
	assert.Regexp(t, regexp.MustCompile(`^sha256:[0-9a-f]{64}$`), baseDigest)

	testCases := map[string]struct {
		files    map[string]string
		wantSame bool
	}{
		"same content": {files: base, wantSame: true},
		"junk skipped": {
			files: with(func(m map[string]string) {
				m[".git/HEAD"] = "ref: x"
				m["tokenizer/.git/config"] = "x"
				m[".cache/huggingface/download/x.lock"] = ""
			}),
			wantSame: true,
		},
		"content changed": {files: with(func(m map[string]string) { m["config.json"] = "{ }" })},
		"file renamed":    {files: with(func(m map[string]string) { m["config2.json"] = m["config.json"]; delete(m, "config.json") })},
		"file moved":      {files: with(func(m map[string]string) { m["sub/config.json"] = m["config.json"]; delete(m, "config.json") })},
		"file added":      {files: with(func(m map[string]string) { m["README.md"] = "" })},
		"nested .cache":   {files: with(func(m map[string]string) { m["tokenizer/.cache/x"] = "" })},
		"bytes moved over": {files: with(func(m map[string]string) {
			m["model-00001.safetensors"] = "weights onew"
			m["model-00002.safetensors"] = "eights two"
		})},
	}
	for name, tc := range testCases {
		t.Run(name, func(t *testing.T) {
			assert := assert.New(t)
			d, err := gpu.WeightsDigest(writeTree(t, tc.files), nil)
			assert.NoError(err)
			if tc.wantSame {
				assert.Equal(baseDigest, d)
			} else {
				assert.NotEqual(baseDigest, d)
			}
		})
	}
}

func TestWeightsDigestLinksAndErrors(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	// A Hugging Face snapshot: links to blobs give the digest of the files.
	plain := writeTree(t, map[string]string{"a.bin": "A", "b/c.json": "C"})
	want, err := gpu.WeightsDigest(plain, nil)
	require.NoError(err)
	blobs := writeTree(t, map[string]string{"1": "A", "2": "C"})
	snap := t.TempDir()
	require.NoError(os.Symlink(filepath.Join(blobs, "1"), filepath.Join(snap, "a.bin")))
	require.NoError(os.Mkdir(filepath.Join(snap, "b"), 0o755))
	require.NoError(os.Symlink(filepath.Join(blobs, "2"), filepath.Join(snap, "b", "c.json")))
	got, err := gpu.WeightsDigest(snap, nil)
	require.NoError(err)
	assert.Equal(want, got)
	link := filepath.Join(t.TempDir(), "model")
	require.NoError(os.Symlink(plain, link))
	got, err = gpu.WeightsDigest(link, nil)
	require.NoError(err)
	assert.Equal(want, got)

	_, err = gpu.WeightsDigest(t.TempDir(), nil)
	assert.Error(err, "empty directory")
	_, err = gpu.WeightsDigest(filepath.Join(t.TempDir(), "missing"), nil)
	assert.Error(err)
	dangling := t.TempDir()
	require.NoError(os.Symlink(filepath.Join(dangling, "nowhere"), filepath.Join(dangling, "x")))
	_, err = gpu.WeightsDigest(dangling, nil)
	assert.Error(err, "dangling link")
	dirLink := writeTree(t, map[string]string{"a": "A"})
	require.NoError(os.Symlink(plain, filepath.Join(dirLink, "sub")))
	_, err = gpu.WeightsDigest(dirLink, nil)
	assert.Error(err, "link to a directory")
}

func TestWeightsDigestProgress(t *testing.T) {
	assert := assert.New(t)
	require := require.New(t)
	dir := t.TempDir()
	const size = 150 << 20 // three 64 MiB steps and a bit
	f, err := os.Create(filepath.Join(dir, "big.bin"))
	require.NoError(err)
	require.NoError(f.Truncate(size))
	require.NoError(f.Close())
	require.NoError(os.WriteFile(filepath.Join(dir, "small"), []byte("x"), 0o644))
	var calls [][2]int64
	_, err = gpu.WeightsDigest(dir, func(done, total int64) { calls = append(calls, [2]int64{done, total}) })
	require.NoError(err)
	require.GreaterOrEqual(len(calls), 3)
	var prev int64
	for _, c := range calls {
		assert.Equal(int64(size+1), c[1])
		assert.LessOrEqual(c[0]-prev, int64(64<<20)+(1<<20), "progress gap")
		prev = c[0]
	}
	assert.Equal(int64(size+1), calls[len(calls)-1][0])
}
