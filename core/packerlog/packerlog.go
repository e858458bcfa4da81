// Package packerlog reads the output of `packer build -machine-readable`: a stream of
// `timestamp,target,type,data...` lines. It extracts the AMI ids a build produced and the lines
// worth quoting when it failed. Success is never decided here: the caller combines Packer's exit
// code with the AMI ids found.
package packerlog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/amichain/amichain/core/ansibletrace"
)

// Line is one machine-readable line with its data fields unescaped.
type Line struct {
	Time time.Time
	// Target is the build name (e.g. "amazon-ebs.image"); empty for ui lines and global ones.
	Target string
	Type   string
	Data   []string
}

// Packer writes a comma inside a field as this, and newlines / carriage returns as `\n` / `\r`.
var unescaper = strings.NewReplacer(`%!(PACKER_COMMA)`, ",", `\n`, "\n", `\r`, "\r")

// ParseLine parses one line (without its newline). ok is false when s is not a machine-readable
// line: a crash dump, a plugin writing to the terminal, a line cut short.
func ParseLine(s string) (l Line, ok bool) {
	parts := strings.Split(strings.TrimRight(s, "\r\n"), ",")
	if len(parts) < 3 || parts[2] == "" {
		return Line{}, false
	}
	sec, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || sec < 0 {
		return Line{}, false
	}
	data := parts[3:]
	for i, d := range data {
		data[i] = unescaper.Replace(d)
	}
	return Line{Time: time.Unix(sec, 0).UTC(), Target: parts[1], Type: parts[2], Data: data}, true
}

// Scanner reads lines from Packer's output as they arrive. Lines have no length limit: a single
// Ansible result can be megabytes long.
type Scanner struct {
	r    *bufio.Reader
	text string
	line Line
	ok   bool
	err  error
}

// NewScanner reads from r.
func NewScanner(r io.Reader) *Scanner { return &Scanner{r: bufio.NewReader(r)} }

// Scan advances to the next line, machine-readable or not. It returns false at the end of the
// input or on a read error (see Err).
func (s *Scanner) Scan() bool {
	if s.err != nil {
		return false
	}
	text, err := s.r.ReadString('\n')
	if err != nil {
		if !errors.Is(err, io.EOF) {
			s.err = fmt.Errorf("read packer output: %w", err)
		} else {
			s.err = io.EOF
		}
		if text == "" {
			return false
		}
	}
	s.text = strings.TrimRight(text, "\r\n")
	s.line, s.ok = ParseLine(s.text)
	return true
}

// Line returns the current line; ok is false when it is not machine-readable (see Text).
func (s *Scanner) Line() (l Line, ok bool) { return s.line, s.ok }

// Text returns the current line as read, without its newline.
func (s *Scanner) Text() string { return s.text }

// Err returns the read error that ended the scan, nil at a normal end of input.
func (s *Scanner) Err() error {
	if errors.Is(s.err, io.EOF) {
		return nil
	}
	return s.err
}

// MaxRelevant is how many relevant lines a Collector keeps: the last ones are the ones that
// explain a failure.
const MaxRelevant = 20

// Collector accumulates what a build reports: the artifacts per build target and the lines
// that explain a failure. The zero value is ready to use.
type Collector struct {
	// artifacts[target][index] is the id of that artifact.
	artifacts map[string]map[int]string
	relevant  []string
	reads     ansibletrace.Reads
	// block gathers a failed task's result that Ansible prints as JSON over several lines
	// ("fatal: [h]: FAILED! => {" ... "}"), to quote it as one line; nil outside one.
	block []string
}

// maxBlock bounds a multi-line failure result quoted as one line.
const maxBlock = 40

// Add records one machine-readable line.
func (c *Collector) Add(l Line) {
	switch l.Type {
	case "artifact":
		c.addArtifact(l)
	case "ui":
		if len(l.Data) < 2 {
			return
		}
		all := l.Data[0] == "error"
		for _, m := range strings.Split(l.Data[1], "\n") {
			if c.reads.Line(m) {
				continue
			}
			if c.block != nil {
				c.addBlock(m)
				continue
			}
			if isFailure(m) && strings.HasSuffix(strings.TrimSpace(m), "=> {") {
				c.block = []string{strings.TrimSpace(m)}
				continue
			}
			if all || isFailure(m) {
				c.addRelevant(m)
			}
		}
	}
}

// addBlock adds one line of a multi-line failure result, without Packer's "target: " prefix,
// and quotes the whole result once its closing brace arrives.
func (c *Collector) addBlock(m string) {
	m = strings.TrimSpace(m)
	if _, rest, ok := strings.Cut(m, ": "); ok && !strings.ContainsAny(m[:len(m)-len(rest)-2], " \"") {
		m = strings.TrimSpace(rest)
	} else if strings.HasSuffix(m, ":") && !strings.Contains(m, " ") {
		m = "" // a prefix alone: an empty line of the result
	}
	if m != "" {
		c.block = append(c.block, m)
	}
	if m == "}" || len(c.block) >= maxBlock {
		c.addRelevant(strings.Join(c.block, " "))
		c.block = nil
	}
}

// AddText records a line that was not machine-readable. In machine-readable mode Packer itself
// writes none, so such a line is a crash or a plugin talking directly: worth quoting.
func (c *Collector) AddText(s string) { c.addRelevant(s) }

func (c *Collector) addArtifact(l Line) {
	// artifact,INDEX,id,ID
	if len(l.Data) < 3 || l.Data[1] != "id" {
		return
	}
	i, err := strconv.Atoi(l.Data[0])
	if err != nil {
		return
	}
	if c.artifacts == nil {
		c.artifacts = map[string]map[int]string{}
	}
	if c.artifacts[l.Target] == nil {
		c.artifacts[l.Target] = map[int]string{}
	}
	// Rejoin: an id with a comma Packer forgot to escape must not lose its tail.
	c.artifacts[l.Target][i] = strings.Join(l.Data[2:], ",")
}

// Ansible's markers for a failed task or play, which arrive as ordinary ui messages.
var failureMarkers = []string{"fatal:", "FAILED!", "ERROR!", "UNREACHABLE!"}

func isFailure(s string) bool {
	for _, m := range failureMarkers {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

func (c *Collector) addRelevant(s string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return
	}
	// Packer repeats a build's error in its closing summary; quote it once.
	for i, r := range c.relevant {
		if r == s {
			c.relevant = append(c.relevant[:i], c.relevant[i+1:]...)
			break
		}
	}
	c.relevant = append(c.relevant, s)
	if len(c.relevant) > MaxRelevant {
		c.relevant = c.relevant[len(c.relevant)-MaxRelevant:]
	}
}

// Relevant returns the last MaxRelevant lines that explain a failure, oldest first: Packer's
// errors and Ansible's failed tasks, trimmed.
func (c *Collector) Relevant() []string { return append([]string(nil), c.relevant...) }

// Reads returns what Ansible was seen to read: the marker lines of core/ansibletrace that
// Packer relayed from the ansible provisioner.
func (c *Collector) Reads() []ansibletrace.Read { return c.reads.List() }

// ArtifactIDs returns the raw artifact ids per build target, by artifact index.
func (c *Collector) ArtifactIDs() map[string][]string {
	out := map[string][]string{}
	for target, byIndex := range c.artifacts {
		for _, i := range sortedKeys(byIndex) {
			out[target] = append(out[target], byIndex[i])
		}
	}
	return out
}

// AMIs returns region -> AMI id for every build target that produced AMIs. Several artifacts
// of one target (the builder's, and the manifest post-processor's copy of it) are merged; two
// artifacts naming different AMIs for one region are an error. Artifact ids that are not AMI
// lists (the null builder's "Null", a file path) are skipped.
func (c *Collector) AMIs() (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for target, byIndex := range c.artifacts {
		for _, i := range sortedKeys(byIndex) {
			amis, ok := ParseAMIs(byIndex[i])
			if !ok {
				continue
			}
			if out[target] == nil {
				out[target] = map[string]string{}
			}
			for region, ami := range amis {
				if prev, dup := out[target][region]; dup && prev != ami {
					return nil, fmt.Errorf("build %s reported two AMIs for %s: %s and %s (artifact %d)", target, region, prev, ami, i)
				}
				out[target][region] = ami
			}
		}
	}
	return out, nil
}

func sortedKeys(m map[int]string) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}

// ParseAMIs parses an amazon-ebs artifact id, "us-east-1:ami-1,eu-west-1:ami-2", into
// region -> AMI id. ok is false when id is not such a list.
func ParseAMIs(id string) (amis map[string]string, ok bool) {
	amis = map[string]string{}
	for _, pair := range strings.Split(id, ",") {
		region, ami, found := strings.Cut(strings.TrimSpace(pair), ":")
		if !found || region == "" || !strings.HasPrefix(ami, "ami-") || len(ami) == len("ami-") {
			return nil, false
		}
		if prev, dup := amis[region]; dup && prev != ami {
			return nil, false
		}
		amis[region] = ami
	}
	return amis, true
}

// Collect reads all of r into a Collector.
func Collect(r io.Reader) (*Collector, error) {
	var c Collector
	s := NewScanner(r)
	for s.Scan() {
		if l, ok := s.Line(); ok {
			c.Add(l)
		} else {
			c.AddText(s.Text())
		}
	}
	return &c, s.Err()
}

// Artifacts returns region -> AMI id per build target found in lines.
func Artifacts(lines []Line) (map[string]map[string]string, error) {
	var c Collector
	for _, l := range lines {
		c.Add(l)
	}
	return c.AMIs()
}
