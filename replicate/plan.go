package replicate

import (
	"sort"
	"strings"
)

// op is one step of a round's plan.
type op uint8

const (
	opRemove op = iota + 1 // delete the destination entry (recursively)
	opMkdir                // create the directory, or fix its permissions
	opCopy                 // write the whole file: temp file, then rename
	opGrow                 // the source grew: append its tail if the destination is its prefix, else copy
	opVerify               // same size, destination marked racy: compare content in full, append any growth, else copy
	opKeep                 // same size and mtime: nothing to do
)

func (o op) String() string {
	return [...]string{"?", "remove", "mkdir", "copy", "grow", "verify", "keep"}[o]
}

// action is one planned step. src is the source entry (zero for removals),
// dst the destination entry it was compared with (zero if there was none).
type action struct {
	op   op
	path string
	src  Entry
	dst  Entry
}

// plan decides what a round does from the two listings alone; it reads no
// file. Removals come first, deepest first, so space is freed before it is
// used and a file never waits for a directory of the same name to go; then
// directories, parents first; then files in source order.
//
// The change test is the foundation's heuristic: equal size and mtime means
// unchanged; a source longer than its destination copy may be an append,
// which the executor confirms by comparing the destination's first 4 KiB
// and last 64 KiB with the same offsets of the source; anything else is
// copied whole. With full set, every source file is copied.
func plan(src, dst []Entry, full bool) []action {
	srcByPath := make(map[string]Entry, len(src))
	for _, e := range src {
		srcByPath[e.Path] = e
	}
	dstByPath := make(map[string]Entry, len(dst))
	var acts []action

	// Removals: entries gone at the source or of another kind there.
	var removed []string
	for _, d := range dst {
		dstByPath[d.Path] = d
		if s, ok := srcByPath[d.Path]; ok && s.Kind == d.Kind {
			continue
		}
		removed = append(removed, d.Path)
	}
	sort.Slice(removed, func(i, j int) bool { return removed[i] < removed[j] })
	gone := make(map[string]bool) // removed directories: their contents go with them
	for _, p := range removed {
		if under(p, gone) {
			continue
		}
		if dstByPath[p].Kind == KindDir {
			gone[p] = true
		}
		acts = append(acts, action{op: opRemove, path: p, dst: dstByPath[p]})
	}
	sort.SliceStable(acts, func(i, j int) bool { return depth(acts[i].path) > depth(acts[j].path) })

	for _, s := range src {
		if s.Kind != KindDir {
			continue
		}
		if d, ok := dstByPath[s.Path]; !ok || d.Kind != KindDir || d.Perm != s.Perm {
			acts = append(acts, action{op: opMkdir, path: s.Path, src: s, dst: d})
		}
	}
	for _, s := range src {
		if s.Kind != KindFile {
			continue
		}
		d, ok := dstByPath[s.Path]
		if !ok || d.Kind != KindFile {
			acts = append(acts, action{op: opCopy, path: s.Path, src: s})
			continue
		}
		acts = append(acts, action{op: fileOp(s, d, full), path: s.Path, src: s, dst: d})
	}
	return acts
}

// fileOp decides for a file present on both sides.
func fileOp(s, d Entry, full bool) op {
	switch {
	case full:
		return opCopy
	case s.Size == d.Size && s.ModTime.Equal(d.ModTime):
		return opKeep
	case s.Size == d.Size && d.ModTime.Equal(racyModTime):
		return opVerify
	case s.Size > d.Size:
		return opGrow
	default:
		return opCopy
	}
}

// under reports whether p lies inside one of the directories in dirs.
func under(p string, dirs map[string]bool) bool {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' && dirs[p[:i]] {
			return true
		}
	}
	return false
}

func depth(p string) int { return strings.Count(p, "/") }
