// Package fingerprint says what an image is made from: the digests of its template, the files
// its playbook uses, its declared inputs, the pinned tools, its parent's AMI id and its own
// entry in the tree. An image is stale exactly when its fingerprint changes.
package fingerprint

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/amichain/amichain/core/ansibledeps"
	"github.com/amichain/amichain/core/toolchain"
	"github.com/amichain/amichain/core/tree"
)

// Scheme versions how inputs are named, framed and hashed, and what counts as an input.
// Changing it rebuilds every image once, so change it only with the scheme. 2: the files
// Ansible searches and loads (playbook-level files/ and templates/, lookups, plugin folders,
// ansible.cfg, collections) and "dir:" listings.
const Scheme = "amichain-fingerprint/2"

// Set is an image's fingerprint: Sum over Inputs, which are sorted by name.
type Set struct {
	Sum    string  `json:"sum"`
	Inputs []Input `json:"inputs"`
}

// Hasher computes fingerprints over one checkout. Create one per run: it hashes each file
// once, however many images use it. Safe for concurrent use.
//
// Symbolic links are rejected, with an error naming the link: a link's target can change
// without the link changing, and a link can point outside the repository.
type Hasher struct {
	fsys    fs.FS
	workers int

	mu    sync.Mutex
	cache map[string]*digest // by path
	dirs  map[string]error   // symlink check of each parent directory
}

// digest is one file's hash, computed by whoever created it; done is closed when it is ready.
type digest struct {
	done chan struct{}
	sum  string
	err  error
}

// NewHasher returns a Hasher reading the repository at the root of fsys.
func NewHasher(fsys fs.FS) *Hasher {
	return &Hasher{
		fsys: fsys,
		// More workers than cores overlaps the open/stat/read syscalls of small files.
		workers: 2 * runtime.GOMAXPROCS(0),
		cache:   map[string]*digest{},
		dirs:    map[string]error{},
	}
}

// Compute returns img's fingerprint. parentAMI is the AMI img is built from (its parent's, or
// the upstream image's for a root image).
func (h *Hasher) Compute(img tree.Image, tools toolchain.Versions, parentAMI string) (Set, error) {
	paths, listed, err := h.files(img)
	if err != nil {
		return Set{}, fmt.Errorf("image %q: %w", img.Name, err)
	}
	sums, err := h.digests(paths)
	if err != nil {
		return Set{}, fmt.Errorf("image %q: %w", img.Name, err)
	}
	inputs := make([]Input, 0, len(paths)+len(tools)+3)
	for i, p := range paths {
		inputs = append(inputs, Input{Name: "file:" + p, Digest: sums[i]})
	}
	for _, d := range listed {
		l, err := h.listing(d)
		if err != nil {
			return Set{}, fmt.Errorf("image %q: %w", img.Name, err)
		}
		inputs = append(inputs, Input{Name: "dir:" + d, Digest: l})
	}
	for k, v := range tools {
		inputs = append(inputs, Input{Name: toolName(k), Digest: v})
	}
	entry, err := imageDigest(img)
	if err != nil {
		return Set{}, fmt.Errorf("image %q: %w", img.Name, err)
	}
	inputs = append(inputs,
		Input{Name: "parent-ami", Digest: parentAMI},
		Input{Name: "image", Digest: entry},
		Input{Name: "scheme", Digest: Scheme},
	)
	sort.Slice(inputs, func(i, j int) bool { return inputs[i].Name < inputs[j].Name })
	return Set{Sum: sum(inputs), Inputs: inputs}, nil
}

// files lists, sorted and once each, the files img is made from, and the folders whose
// listing is an input.
func (h *Hasher) files(img tree.Image) (files, listed []string, err error) {
	set := map[string]bool{img.Template: true}
	deps, err := ansibledeps.Analyze(h.fsys, img.Playbook)
	if err != nil {
		return nil, nil, err
	}
	// A templated reference is accepted when a declared input covers it: that is what the
	// error tells the user to declare.
	if err := deps.Check(img.Inputs); err != nil {
		return nil, nil, err
	}
	for _, d := range deps.Files {
		set[d] = true
	}
	listed = deps.Listed
	if img.Verify != "" {
		// The verify playbook decides whether an AMI is made: it is an input too.
		vdeps, err := ansibledeps.Analyze(h.fsys, img.Verify)
		if err == nil {
			err = vdeps.Check(img.Inputs)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("verify playbook: %w", err)
		}
		for _, d := range vdeps.Files {
			set[d] = true
		}
		listed = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(listed), vdeps.Listed...))))
	}
	for _, in := range img.Inputs {
		fi, err := fs.Stat(h.fsys, in)
		if err != nil {
			return nil, nil, fmt.Errorf("input %s: %w (fix the path in amichain.yaml)", in, err)
		}
		if !fi.IsDir() {
			set[in] = true
			continue
		}
		err = fs.WalkDir(h.fsys, in, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("input %s: %w", in, err)
			}
			if !d.IsDir() {
				set[p] = true
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, listed, nil
}

// Files lists, sorted and once each, the files img is made from: its template, the files its
// playbook and verify playbook use, and its inputs.
func (h *Hasher) Files(img tree.Image) ([]string, error) {
	files, _, err := h.files(img)
	return files, err
}

// digests returns the sha256 of each path, hashing in parallel the ones not hashed yet.
func (h *Hasher) digests(paths []string) ([]string, error) {
	all := make([]*digest, len(paths))
	var todo []int // indexes of the paths this call hashes
	h.mu.Lock()
	for i, p := range paths {
		d := h.cache[p]
		if d == nil {
			d = &digest{done: make(chan struct{})}
			h.cache[p] = d
			todo = append(todo, i)
		}
		all[i] = d
	}
	h.mu.Unlock()

	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(h.workers, len(todo)) {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			for i := range jobs {
				d := all[i]
				d.sum, d.err = h.hashFile(paths[i], buf)
				close(d.done)
			}
		})
	}
	for _, i := range todo {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	out := make([]string, len(paths))
	for i, d := range all {
		<-d.done // another Compute may be hashing it
		if d.err != nil {
			return nil, d.err
		}
		out[i] = d.sum
	}
	return out, nil
}

func (h *Hasher) hashFile(p string, buf []byte) (string, error) {
	if err := h.checkDir(path.Dir(p)); err != nil {
		return "", err
	}
	fi, err := fs.Lstat(h.fsys, p)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	if err := regular(p, fi); err != nil {
		return "", err
	}
	f, err := h.fsys.Open(p)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	defer f.Close()
	sh := sha256.New()
	if _, err := io.CopyBuffer(sh, struct{ io.Reader }{f}, buf); err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	return hex.EncodeToString(sh.Sum(nil)), nil
}

// checkDir rejects a symbolic link anywhere on the way to dir.
func (h *Hasher) checkDir(dir string) error {
	if dir == "." {
		return nil
	}
	h.mu.Lock()
	err, ok := h.dirs[dir]
	h.mu.Unlock()
	if ok {
		return err
	}
	err = h.checkDir(path.Dir(dir))
	if err == nil {
		var fi fs.FileInfo
		if fi, err = fs.Lstat(h.fsys, dir); err != nil {
			err = fmt.Errorf("hash: %w", err)
		} else if fi.Mode()&fs.ModeSymlink != 0 {
			err = symlinkError(dir)
		}
	}
	h.mu.Lock()
	h.dirs[dir] = err
	h.mu.Unlock()
	return err
}

func regular(p string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return symlinkError(p)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file (%s): remove it or keep it out of the image's inputs", p, fi.Mode().Type())
	}
	return nil
}

func symlinkError(p string) error {
	return fmt.Errorf("%s is a symbolic link: fingerprints hash file contents and do not follow links; replace it with the file or directory it points to", p)
}

// imageDigest hashes the image's entry in the tree, inputs sorted: reordering them changes
// nothing, anything else in the entry does.
func imageDigest(img tree.Image) (string, error) {
	img.Inputs = slices.Sorted(slices.Values(img.Inputs))
	data, err := json.Marshal(img) // map keys come out sorted
	if err != nil {
		return "", fmt.Errorf("encode image entry: %w", err)
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:]), nil
}

// toolName names a pin: PACKER_VERSION is "tool:packer", PACKER_SUM is "tool:packer:sum",
// a one-word key FOO is "tool:foo:" (never equal to another key's name).
func toolName(key string) string {
	k := strings.ToLower(strings.ReplaceAll(key, "_", "-"))
	if t, ok := strings.CutSuffix(k, "-version"); ok {
		return "tool:" + t
	}
	if i := strings.LastIndexByte(k, '-'); i > 0 {
		return "tool:" + k[:i] + ":" + k[i+1:]
	}
	return "tool:" + k + ":"
}

// sum hashes sorted inputs, each name and digest length-prefixed so that no two different
// lists frame to the same bytes.
func sum(inputs []Input) string {
	sh := sha256.New()
	io.WriteString(sh, Scheme+"\n")
	var n [binary.MaxVarintLen64]byte
	for _, in := range inputs {
		for _, s := range []string{in.Name, in.Digest} {
			sh.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
			io.WriteString(sh, s)
		}
	}
	return hex.EncodeToString(sh.Sum(nil))
}
