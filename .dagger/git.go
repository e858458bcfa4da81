package main

import (
	"context"
	"strings"
)

// gitInfo returns the commit and branch to record: the flags, else what .git says, else
// "unknown" (a source without git metadata still builds).
func (m *Amichain) gitInfo(ctx context.Context) (commit, branch string) {
	commit, branch = m.Commit, m.Branch
	if m.Git == nil || (commit != "" && branch != "") {
		return or(commit), or(branch)
	}
	head, err := m.Git.File("HEAD").Contents(ctx)
	if err != nil {
		return or(commit), or(branch)
	}
	head = strings.TrimSpace(head)
	ref, isRef := strings.CutPrefix(head, "ref: ")
	if !isRef {
		if commit == "" {
			commit = head // detached HEAD, as CI checkouts often are
		}
		return or(commit), or(branch)
	}
	if branch == "" {
		branch = strings.TrimPrefix(ref, "refs/heads/")
	}
	if commit == "" {
		commit = m.resolveRef(ctx, ref)
	}
	return or(commit), or(branch)
}

func (m *Amichain) resolveRef(ctx context.Context, ref string) string {
	if id, err := m.Git.File(ref).Contents(ctx); err == nil {
		return strings.TrimSpace(id)
	}
	packed, err := m.Git.File("packed-refs").Contents(ctx)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(packed, "\n") {
		if id, name, ok := strings.Cut(line, " "); ok && name == ref {
			return id
		}
	}
	return ""
}

func or(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
