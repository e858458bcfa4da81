package fingerprint

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amichain/amichain/core/tree"
)

// genTree writes an ansible-like repository of about 200 MB: 40 roles, each with 400 small
// templates (~4 KB) and 3 larger files (~1.1 MB), all used by ansible/site.yml. It is
// deterministic, so both benchmarks hash the same bytes. It returns the files and their size.
func genTree(b *testing.B) (dir string, files []string, total int64) {
	b.Helper()
	dir = b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	write := func(name string, size int) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(' ' + rng.IntN(95))
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	writeText := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	var play strings.Builder
	play.WriteString("- hosts: all\n  roles:\n")
	for r := range 40 {
		role := fmt.Sprintf("ansible/roles/r%02d", r)
		fmt.Fprintf(&play, "    - r%02d\n", r)
		writeText(role+"/tasks/main.yml", "- name: configure\n  ansible.builtin.template: {src: t000.j2, dest: /etc/x}\n")
		writeText(role+"/defaults/main.yml", fmt.Sprintf("role_id: %d\n", r))
		for i := range 400 {
			write(fmt.Sprintf("%s/templates/t%03d.j2", role, i), 2048+rng.IntN(4096))
		}
		for i := range 3 {
			write(fmt.Sprintf("%s/files/blob%d.bin", role, i), 1_100_000+rng.IntN(50_000))
		}
	}
	writeText("ansible/site.yml", play.String())
	write("packer/image.pkr.hcl", 2000)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, p)
		total += fi.Size()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return dir, files, total
}

func BenchmarkFingerprint200MB(b *testing.B) {
	dir, files, total := genTree(b)
	img := tree.Image{Name: "bench", Template: "packer/image.pkr.hcl", Playbook: "ansible/site.yml"}
	fsys := os.DirFS(dir)
	b.SetBytes(total)
	for b.Loop() {
		set, err := NewHasher(fsys).Compute(img, nil, "ami-1")
		if err != nil {
			b.Fatal(err)
		}
		if n := len(set.Inputs) - 3; n != len(files) {
			b.Fatalf("hashed %d files, want %d", n, len(files))
		}
	}
}

func BenchmarkSHA256Baseline200MB(b *testing.B) {
	_, files, total := genTree(b)
	buf := make([]byte, 256<<10)
	b.SetBytes(total)
	for b.Loop() {
		for _, p := range files {
			f, err := os.Open(p)
			if err != nil {
				b.Fatal(err)
			}
			h := sha256.New()
			_, err = io.CopyBuffer(h, f, buf)
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
			h.Sum(nil)
		}
	}
}
