package replicate

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRemoteSinkConformance(t *testing.T) {
	testSinkConformance(t, func(t *testing.T) (Sink, string) {
		dir := t.TempDir()
		s, err := NewRemoteSink(inProcessAgent(t, RoleTarget, dir), testToken, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s, dir
	})
}

func TestAgentRefusesWrongToken(t *testing.T) {
	dir := t.TempDir()
	u := inProcessAgent(t, RoleTarget, dir)
	for _, tc := range []struct{ name, header string }{
		{"none", ""},
		{"wrong", "Bearer nope"},
		{"not bearer", "Basic " + testToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, u+"/v1/remove?path=x", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "token") {
				t.Fatalf("status %d %s, want 401 naming the token", resp.StatusCode, body)
			}
		})
	}
	// A source agent has no sink routes at all: nothing can write there.
	src := inProcessAgent(t, RoleSource, t.TempDir())
	req, _ := http.NewRequest(http.MethodPut, src+"/v1/file?path=x", strings.NewReader("x"))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		t.Fatalf("a source agent accepted a write: %d", resp.StatusCode)
	}
}

// dataTree writes a directory worth patching: a 4 MiB "database" and a few
// smaller files.
func dataTree(t testing.TB, dir string) {
	writeFile(t, filepath.Join(dir, "db", "main.db"), pattern(11, 4<<20))
	writeFile(t, filepath.Join(dir, "db", "index.db"), pattern(12, 512<<10))
	writeFile(t, filepath.Join(dir, "orders.log"), pattern(13, 300<<10))
	writeFile(t, filepath.Join(dir, "small.conf"), []byte("x = 1\n"))
	ageTree(t, dir)
}

// scatter overwrites n 4 KiB pages of the file, spread over it.
func scatter(t testing.TB, path string, n int, seed byte) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	step := len(data) / n
	for i := range n {
		copy(data[i*step:], pattern(seed+byte(i), 4096))
	}
	writeFile(t, path, data)
}

// TestMethods runs every method over every pair of endpoints: a full copy,
// changes (scattered page writes, an insertion, an append, a new file
// duplicating an old one, a removal), an incremental round, and a
// comparison of the trees.
func TestMethods(t *testing.T) {
	type setup func(t *testing.T, src, dst string) (Endpoint, Endpoint)
	local := func(t *testing.T, src, dst string) (Endpoint, Endpoint) {
		return Endpoint{Dir: src}, Endpoint{Dir: dst}
	}
	toAgent := func(t *testing.T, src, dst string) (Endpoint, Endpoint) {
		return Endpoint{Dir: src}, Endpoint{Agent: inProcessAgent(t, RoleTarget, dst)}
	}
	agents := func(t *testing.T, src, dst string) (Endpoint, Endpoint) {
		_, s := startAgent(t, RoleSource, src, "")
		_, d := startAgent(t, RoleTarget, dst, "")
		return Endpoint{Agent: s}, Endpoint{Agent: d}
	}
	for _, kind := range []string{MethodSnapshot, MethodIncremental} {
		for _, ep := range []struct {
			name string
			make setup
		}{{"dirs", local}, {"dir to agent", toAgent}, {"agent to agent", agents}} {
			t.Run(kind+"/"+ep.name, func(t *testing.T) {
				ctx := context.Background()
				src, dst := t.TempDir(), t.TempDir()
				dataTree(t, src)
				s, d := ep.make(t, src, dst)
				m, err := NewMethod(MethodConfig{Kind: kind, Src: s, Dst: d, Token: testToken})
				if err != nil {
					t.Fatal(err)
				}
				st, err := m.Full(ctx)
				if err != nil {
					t.Fatalf("full: %v", err)
				}
				if !st.Consistent || st.Copied != 4 {
					t.Errorf("full: %+v, want 4 files copied, consistent", st)
				}
				assertSameTree(t, src, dst)

				mainIno := inode(t, filepath.Join(dst, "db", "main.db"))
				scatter(t, filepath.Join(src, "db", "main.db"), 8, 40)
				idx, _ := os.ReadFile(filepath.Join(src, "db", "index.db"))
				writeFile(t, filepath.Join(src, "db", "index.db"), append(append(append([]byte{}, idx[:1000]...), "inserted"...), idx[1000:]...))
				appendFile(t, filepath.Join(src, "orders.log"), pattern(14, 10_000))
				writeFile(t, filepath.Join(src, "db", "copy.db"), idx)
				rm(t, filepath.Join(src, "small.conf"))

				st, err = m.Incremental(ctx)
				if err != nil {
					t.Fatalf("incremental: %v", err)
				}
				assertSameTree(t, src, dst)
				t.Logf("incremental: %+v", st)
				if st.Appended != 1 || st.Removed != 1 {
					t.Errorf("incremental: %+v, want 1 append and 1 removal", st)
				}
				if kind == MethodIncremental {
					// 8 pages written in place cost about their 4 KiB each (refined
					// to 512-byte blocks), the insertion a chunk or two; the
					// copy of index.db costs nothing new.
					if inode(t, filepath.Join(dst, "db", "main.db")) != mainIno {
						t.Error("main.db was rewritten, not patched in place")
					}
					if st.Patched != 3 || st.Bytes > 120_000 || st.Reused < 4<<20 {
						t.Errorf("incremental: %+v, want 3 patched files, under 120 kB new (the pages, the insertion and the append), over 4 MiB reused", st)
					}
				} else if st.Bytes < 4<<20 {
					t.Errorf("snapshot method sent %d bytes: changed files should go whole", st.Bytes)
				}
				// A second change uses the chunk lists learnt by the first.
				scatter(t, filepath.Join(src, "db", "main.db"), 4, 80)
				st, err = m.Incremental(ctx)
				if err != nil {
					t.Fatalf("second incremental: %v", err)
				}
				assertSameTree(t, src, dst)
				if kind == MethodIncremental && (st.ManifestsFetched != 0 || st.Patched != 1) {
					t.Errorf("second incremental: %+v, want one patch and no chunk list fetched", st)
				}
			})
		}
	}
}

func TestHookMethod(t *testing.T) {
	ctx := context.Background()
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "a"), []byte("native"))
	trace := filepath.Join(t.TempDir(), "trace")
	sh := func(script string) []string { return []string{"/bin/sh", "-c", script} }
	m, err := NewMethod(MethodConfig{Kind: MethodHook, Src: Endpoint{Dir: src}, Dst: Endpoint{Dir: dst}, Hooks: Hooks{
		Pre:     sh("echo pre {mode} >> " + trace),
		Command: sh("cp -a {src}/. {dst}/ && echo copy {mode} >> " + trace),
		Post:    sh("echo post {mode} >> " + trace),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Full(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Incremental(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(trace)
	want := "pre full\ncopy full\npost full\npre incremental\ncopy incremental\npost incremental\n"
	if string(got) != want {
		t.Errorf("hooks ran:\n%s\nwant:\n%s", got, want)
	}
	mustEqualFiles(t, filepath.Join(src, "a"), filepath.Join(dst, "a"))

	// A failing command is reported with its output; post still runs.
	m, _ = NewMethod(MethodConfig{Kind: MethodHook, Src: Endpoint{Dir: src}, Dst: Endpoint{Dir: dst}, Hooks: Hooks{
		Command: sh("echo replica unreachable >&2; exit 3"),
		Post:    sh("echo resumed >> " + trace),
	}})
	_, err = m.Full(ctx)
	if err == nil || !strings.Contains(err.Error(), "replica unreachable") {
		t.Errorf("err = %v, want the command's output", err)
	}
	if got, _ := os.ReadFile(trace); !strings.HasSuffix(string(got), "resumed\n") {
		t.Error("post hook did not run after a failure")
	}
}

// TestSnapshotQuiesceHook checks that a failing quiesce hook stops the
// snapshot before anything is copied, and that a working one brackets it.
func TestSnapshotQuiesceHook(t *testing.T) {
	ctx := context.Background()
	src, dst := t.TempDir(), t.TempDir()
	dataTree(t, src)
	m, _ := NewMethod(MethodConfig{Kind: MethodSnapshot, Src: Endpoint{Dir: src}, Dst: Endpoint{Dir: dst},
		Hooks: Hooks{Pre: []string{"/bin/false"}}})
	if _, err := m.Full(ctx); err == nil || !strings.Contains(err.Error(), "pre hook") {
		t.Fatalf("err = %v, want the pre hook's failure", err)
	}
	if entries, _ := os.ReadDir(dst); len(entries) != 0 {
		t.Errorf("destination has %d entries after a refused quiesce", len(entries))
	}
	marker := filepath.Join(t.TempDir(), "paused")
	m, _ = NewMethod(MethodConfig{Kind: MethodSnapshot, Src: Endpoint{Dir: src}, Dst: Endpoint{Dir: dst},
		Hooks: Hooks{Pre: []string{"touch", marker}, Post: []string{"rm", marker}}})
	if _, err := m.Full(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Error("post hook did not undo the pre hook")
	}
	assertSameTree(t, src, dst)
}

func TestNewMethodRejectsBadConfig(t *testing.T) {
	d := t.TempDir()
	for _, tc := range []struct {
		name string
		cfg  MethodConfig
		want string
	}{
		{"unknown kind", MethodConfig{Kind: "rsync", Src: Endpoint{Dir: d}, Dst: Endpoint{Dir: d + "/x"}}, "write snapshot"},
		{"no source", MethodConfig{Kind: MethodSnapshot, Dst: Endpoint{Dir: d}}, "source: give either"},
		{"both", MethodConfig{Kind: MethodSnapshot, Src: Endpoint{Dir: d, Agent: "http://x:1"}, Dst: Endpoint{Dir: "y"}}, "source: give either"},
		{"agent to dir", MethodConfig{Kind: MethodSnapshot, Src: Endpoint{Agent: "http://x:1"}, Dst: Endpoint{Dir: d}, Token: "t"}, "target agent"},
		{"bad url", MethodConfig{Kind: MethodSnapshot, Src: Endpoint{Dir: d}, Dst: Endpoint{Agent: "ftp://x"}, Token: "t"}, "want http"},
		{"no token", MethodConfig{Kind: MethodSnapshot, Src: Endpoint{Dir: d}, Dst: Endpoint{Agent: "http://x:1"}}, "token"},
		{"overlap", MethodConfig{Kind: MethodSnapshot, Src: Endpoint{Dir: d}, Dst: Endpoint{Dir: d + "/sub"}}, "overlap"},
		{"hook without command", MethodConfig{Kind: MethodHook}, "hooks.command"},
		{"bad chunking", MethodConfig{Kind: MethodIncremental, Src: Endpoint{Dir: d}, Dst: Endpoint{Dir: d + "2"}, Chunking: ChunkParams{Min: 1, Avg: 3, Max: 2}}, "power of two"},
		{"negative throttle", MethodConfig{Kind: MethodSnapshot, Src: Endpoint{Dir: d}, Dst: Endpoint{Dir: d + "2"}, Throttle: -1}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewMethod(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestIncrementalRacyFile covers a large file changed just before each
// round, as a live database's is: the destination carries the racy marker,
// and the next round patches it in place against the chunks it knows
// (without first comparing the whole file on both sides); once it stops
// changing, a round finds it the same, counts it unchanged and settles its
// mtime without rewriting it.
func TestIncrementalRacyFile(t *testing.T) {
	ctx := context.Background()
	src, dst := t.TempDir(), t.TempDir()
	path := filepath.Join(src, "live.db")
	m := copiedIncremental(t, src, dst, path, pattern(1, 2<<20))
	replica := filepath.Join(dst, "live.db")
	ino := inode(t, replica)
	for round, seed := range []byte{10, 20} {
		scatter(t, path, 4, seed) // just now: the round reads it within the racy window
		st, err := m.Incremental(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mustEqualFiles(t, path, replica)
		// The full copy left no chunk list in the cache: the first round
		// fetches the replica's; the second patches against what the
		// first sent.
		if st.Patched != 1 || st.Bytes > 64<<10 || st.ManifestsFetched != 1-round {
			t.Errorf("round %d: %+v, want one patch of about 16 KiB, %d chunk lists fetched", round, st, 1-round)
		}
		info, err := os.Stat(replica)
		if err != nil {
			t.Fatal(err)
		}
		if !info.ModTime().Equal(racyModTime) {
			t.Errorf("round %d: replica mtime %v, want the racy marker", round, info.ModTime())
		}
	}
	st, old := settledRound(t, m, path)
	if st.Unchanged != 1 || st.Patched != 0 {
		t.Errorf("settled file: %+v, want it counted unchanged", st)
	}
	if info, err := os.Stat(replica); err != nil || !info.ModTime().Equal(old) {
		t.Errorf("settled file: replica mtime %v (%v), want the source's %v", info.ModTime(), err, old)
	}
	if inode(t, replica) != ino {
		t.Error("the replica was rewritten, not patched in place")
	}
	mustEqualFiles(t, path, replica)
}

// TestIncrementalRepeatedChunks: a large file that holds the same chunk
// many times (zeroed pages, as a preallocated database or WAL has) and is
// found unchanged after a racy round is left in place, not rewritten:
// every chunk is copied from where the replica holds it, not from the
// first place its key was seen.
func TestIncrementalRepeatedChunks(t *testing.T) {
	ctx := context.Background()
	src, dst := t.TempDir(), t.TempDir()
	path := filepath.Join(src, "prealloc.db")
	m := copiedIncremental(t, src, dst, path, append(pattern(3, 256<<10), make([]byte, 8<<20)...))
	scatter(t, path, 2, 40) // just now: the replica gets the racy marker
	if _, err := m.Incremental(ctx); err != nil {
		t.Fatal(err)
	}
	replica := filepath.Join(dst, "prealloc.db")
	ino := inode(t, replica)
	st, _ := settledRound(t, m, path)
	if st.Unchanged != 1 || st.Patched != 0 {
		t.Errorf("%+v, want the file counted unchanged", st)
	}
	if inode(t, replica) != ino {
		t.Error("the unchanged file was rewritten")
	}
	mustEqualFiles(t, path, replica)
}

// copiedIncremental writes data to path under src, ages the tree, and
// returns an incremental method from src to dst after its full copy.
func copiedIncremental(t *testing.T, src, dst, path string, data []byte) Method {
	t.Helper()
	writeFile(t, path, data)
	ageTree(t, src)
	m, err := NewMethod(MethodConfig{Kind: MethodIncremental, Src: Endpoint{Dir: src}, Dst: Endpoint{Dir: dst}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Full(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m
}

// settledRound ages path by a minute, as a file that stopped changing,
// and runs an incremental round; it returns the round's stats and the
// mtime given.
func settledRound(t *testing.T, m Method, path string) (Stats, time.Time) {
	t.Helper()
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	st, err := m.Incremental(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st, old
}
