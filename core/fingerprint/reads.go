package fingerprint

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/amichain/amichain/core/ansibletrace"
)

// listing digests the names in folder dir ("name" for a file, "name/" for a folder, sorted):
// a "dir:" input, which changes when an entry is added, removed or renamed.
func (h *Hasher) listing(dir string) (string, error) {
	if err := h.checkDir(dir); err != nil {
		return "", err
	}
	entries, err := fs.ReadDir(h.fsys, dir)
	if err != nil {
		return "", fmt.Errorf("list %s: %w", dir, err)
	}
	sh := sha256.New()
	for _, e := range entries { // ReadDir sorts by name
		name := e.Name()
		if e.IsDir() {
			name += "/"
		}
		sh.Write([]byte(name + "\n"))
	}
	return hex.EncodeToString(sh.Sum(nil)), nil
}

// Reads returns the inputs for what a build was seen to read: "file:P" with the file's
// digest, "dir:P" with the folder's listing. A path gone since is left out: a later plan
// then finds it removed.
func (h *Hasher) Reads(reads []ansibletrace.Read) ([]Input, error) {
	var out []Input
	for _, r := range reads {
		in, ok, err := h.read(r.Kind, r.Path)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, in)
		}
	}
	return out, nil
}

// ReadsChanged says which of the recorded reads of a build differ in this checkout, one line
// each ("ansible/filter_plugins/naming.py changed"), sorted; empty when none.
func (h *Hasher) ReadsChanged(recorded []Input) ([]string, error) {
	var now []Input
	for _, in := range recorded {
		kind, p, ok := strings.Cut(in.Name, ":")
		if !ok {
			continue
		}
		cur, ok, err := h.read(ansibletrace.Kind(kind), p)
		if err != nil {
			return nil, err
		}
		if ok {
			now = append(now, cur)
		}
	}
	return Diff(recorded, now), nil
}

// read digests one read; ok is false when the path no longer exists.
func (h *Hasher) read(kind ansibletrace.Kind, p string) (Input, bool, error) {
	if !fs.ValidPath(p) {
		return Input{}, false, nil
	}
	var sum string
	var err error
	switch kind {
	case ansibletrace.File:
		var sums []string
		sums, err = h.digests([]string{p})
		if err == nil {
			sum = sums[0]
		}
	case ansibletrace.Dir:
		sum, err = h.listing(p)
	default:
		return Input{}, false, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return Input{}, false, nil
	}
	if err != nil {
		return Input{}, false, err
	}
	return Input{Name: string(kind) + ":" + p, Digest: sum}, true, nil
}
