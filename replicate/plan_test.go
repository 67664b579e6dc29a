package replicate

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPlan(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	t1 := t0.Add(time.Millisecond)
	file := func(p string, size int64, mt time.Time) Entry {
		return Entry{Path: p, Kind: KindFile, Size: size, ModTime: mt, Perm: 0o644}
	}
	dir := func(p string) Entry { return Entry{Path: p, Kind: KindDir, Perm: 0o755} }
	other := func(p string) Entry { return Entry{Path: p, Kind: KindOther} }

	cases := []struct {
		name     string
		src, dst []Entry
		full     bool
		want     []string // "op path"
	}{
		{name: "empty", want: nil},
		{
			name: "new file in new dirs, parents first",
			src:  []Entry{dir("a"), dir("a/b"), file("a/b/f", 3, t0)},
			want: []string{"mkdir a", "mkdir a/b", "copy a/b/f"},
		},
		{
			name: "same size and mtime is kept",
			src:  []Entry{file("f", 10, t0)},
			dst:  []Entry{file("f", 10, t0)},
			want: []string{"keep f"},
		},
		{
			name: "full copies even unchanged files",
			src:  []Entry{file("f", 10, t0)},
			dst:  []Entry{file("f", 10, t0)},
			full: true,
			want: []string{"copy f"},
		},
		{
			name: "grown is a possible append",
			src:  []Entry{file("f", 11, t1)},
			dst:  []Entry{file("f", 10, t0)},
			want: []string{"grow f"},
		},
		{
			name: "grown from empty is a possible append",
			src:  []Entry{file("f", 11, t1)},
			dst:  []Entry{file("f", 0, t0)},
			want: []string{"grow f"},
		},
		{
			name: "same size, new mtime is copied",
			src:  []Entry{file("f", 10, t1)},
			dst:  []Entry{file("f", 10, t0)},
			want: []string{"copy f"},
		},
		{
			name: "same size, racy destination is verified",
			src:  []Entry{file("f", 10, t1)},
			dst:  []Entry{file("f", 10, racyModTime)},
			want: []string{"verify f"},
		},
		{
			name: "grown racy destination is a possible append",
			src:  []Entry{file("f", 12, t1)},
			dst:  []Entry{file("f", 10, racyModTime)},
			want: []string{"grow f"},
		},
		{
			name: "shrunk is copied",
			src:  []Entry{file("f", 9, t1)},
			dst:  []Entry{file("f", 10, t0)},
			want: []string{"copy f"},
		},
		{
			name: "removals first, deepest first, a removed dir covers its contents",
			src:  []Entry{file("z", 1, t0)},
			dst: []Entry{
				dir("a"), dir("a/b"), file("a/b/c", 1, t0),
				dir("d"), file("d/e", 1, t0), file("x", 1, t0), other("y"), file("z", 1, t0),
			},
			want: []string{"remove a", "remove d", "remove x", "remove y", "keep z"},
		},
		{
			name: "removal order by depth",
			src:  []Entry{dir("a"), dir("a/b")},
			dst:  []Entry{dir("a"), dir("a/b"), file("a/b/c", 1, t0), file("a/f", 1, t0), file("g", 1, t0)},
			want: []string{"remove a/b/c", "remove a/f", "remove g"},
		},
		{
			name: "a prefix-named sibling is not inside the removed dir",
			src:  []Entry{},
			dst:  []Entry{dir("a"), file("a-b", 1, t0), file("a/c", 1, t0)},
			want: []string{"remove a", "remove a-b"},
		},
		{
			name: "kind changes remove then recreate",
			src:  []Entry{dir("k"), file("k/f", 1, t0), file("m", 1, t0), dir("s")},
			dst:  []Entry{file("k", 1, t0), dir("m"), file("m/x", 1, t0), other("s")},
			want: []string{"remove k", "remove m", "remove s", "mkdir k", "mkdir s", "copy k/f", "copy m"},
		},
		{
			name: "directory with new permissions",
			src:  []Entry{{Path: "d", Kind: KindDir, Perm: 0o700}},
			dst:  []Entry{dir("d")},
			want: []string{"mkdir d"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, a := range plan(tc.src, tc.dst, tc.full) {
				got = append(got, fmt.Sprintf("%s %s", a.op, a.path))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLargestFirst(t *testing.T) {
	act := func(o op, p string, src, dst int64) action {
		return action{op: o, path: p, src: Entry{Path: p, Kind: KindFile, Size: src}, dst: Entry{Path: p, Kind: KindFile, Size: dst}}
	}
	cases := []struct {
		name string
		acts []action
		want []string
	}{
		{name: "empty"},
		{
			name: "copies by size, ties in plan order",
			acts: []action{act(opCopy, "a", 1, 0), act(opCopy, "b", 512, 0), act(opCopy, "c", 16, 0), act(opCopy, "d", 16, 0)},
			want: []string{"copy b", "copy c", "copy d", "copy a"},
		},
		{
			name: "a grow moves its growth, a keep nothing, a verify the whole file",
			acts: []action{act(opKeep, "k", 1000, 1000), act(opGrow, "g", 900, 850), act(opVerify, "v", 100, 100), act(opCopy, "c", 60, 0)},
			want: []string{"verify v", "copy c", "grow g", "keep k"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			orig := append([]action(nil), c.acts...)
			var got []string
			for _, a := range largestFirst(c.acts) {
				got = append(got, fmt.Sprintf("%s %s", a.op, a.path))
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(orig, c.acts, cmp.AllowUnexported(action{})); diff != "" {
				t.Errorf("the plan itself was reordered (-before +after):\n%s", diff)
			}
		})
	}
}
