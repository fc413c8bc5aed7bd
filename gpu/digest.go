package gpu

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// digestVersion starts the hashed stream, so a change of framing can never
// collide with digests of the old one.
const digestVersion = "cocoon-weights-v1\n"

// digestProgressStep is how often WeightsDigest reports progress.
const digestProgressStep = 64 << 20

// weightsFile is one file of a model directory.
type weightsFile struct {
	rel  string // slash-separated path relative to the directory
	abs  string
	size int64
}

// WeightsDigest returns the digest of a model directory, "sha256:<hex>",
// which workers announce and registries allow.
//
// The digest is SHA-256 over "cocoon-weights-v1\n", then for each file in
// sorted order of its slash-separated relative path: the path's length
// (8 bytes, big-endian), the path, the file's size (8 bytes, big-endian) and
// its content; then the number of files (8 bytes, big-endian). Path and size
// frame the content, so renaming, moving, splitting or joining files changes
// the digest.
//
// Skipped, and only these: directories named ".git" (version control
// metadata) and the top-level ".cache" directory (Hugging Face download
// metadata and locks), which do not affect the model. Symbolic links to files
// are followed (the Hugging Face cache stores snapshots as links to blobs);
// any other special file, a link to a directory, or a file that changes size
// while it is read is an error, never skipped silently. An empty directory
// is an error.
//
// progress, if not nil, is called with the bytes hashed so far and the total
// at least every 64 MiB and once at the end.
func WeightsDigest(dir string, progress func(done, total int64)) (string, error) {
	files, total, err := listWeights(dir)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	var frame [8]byte
	putInt := func(n int64) {
		binary.BigEndian.PutUint64(frame[:], uint64(n))
		h.Write(frame[:])
	}
	h.Write([]byte(digestVersion))
	buf := make([]byte, 1<<20)
	var done, reported int64
	for _, f := range files {
		putInt(int64(len(f.rel)))
		h.Write([]byte(f.rel))
		putInt(f.size)
		if err := hashFile(h, f, buf, func(n int64) {
			done += n
			if progress != nil && done-reported >= digestProgressStep {
				reported = done
				progress(done, total)
			}
		}); err != nil {
			return "", err
		}
	}
	putInt(int64(len(files)))
	if progress != nil {
		progress(done, total)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(w io.Writer, f weightsFile, buf []byte, advance func(int64)) error {
	fh, err := os.Open(f.abs)
	if err != nil {
		return fmt.Errorf("weights digest: %w", err)
	}
	defer fh.Close()
	var n int64
	for n < f.size {
		m, err := fh.Read(buf[:min(int64(len(buf)), f.size-n)])
		if m > 0 {
			w.Write(buf[:m])
			n += int64(m)
			advance(int64(m))
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("weights digest: read %s: %w", f.rel, err)
		}
	}
	// The file must be exactly the size we framed it with.
	if extra, _ := fh.Read(buf[:1]); n != f.size || extra > 0 {
		return fmt.Errorf("weights digest: %s changed size while being read", f.rel)
	}
	return nil
}

func listWeights(dir string) ([]weightsFile, int64, error) {
	var (
		files []weightsFile
		total int64
	)
	// A model directory given as a link (as Hugging Face snapshot paths
	// often are) is walked where it points.
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("weights digest: %w", err)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if d.Name() == ".git" || rel == ".cache" {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := os.Stat(path) // follows links
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file (%s)", rel, info.Mode().Type())
		}
		files = append(files, weightsFile{rel: rel, abs: path, size: info.Size()})
		total += info.Size()
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("weights digest: list %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, 0, fmt.Errorf("weights digest: no files in %s", dir)
	}
	slices.SortFunc(files, func(a, b weightsFile) int { return strings.Compare(a.rel, b.rel) })
	return files, total, nil
}
