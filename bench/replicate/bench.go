package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/zeebo/blake3"

	"github.com/phoenixsre/phoenix/replicate"
)

// benchSnapshot times full copies of src: tar | tar (and the same followed
// by a filesystem sync, for a durable comparison), Snapshot in process
// (temp file, CRC-32C verified on arrival, fsync, rename, per file), and a
// snapshot pushed by a source agent to a target agent. Best of o.runs; the
// contenders take turns, in a rotating order, on the same source (in the
// page cache for all) into an empty directory, after a sync.
func benchSnapshot(ctx context.Context, o options, e *env, src string, log io.Writer) (string, error) {
	srcAgent, err := e.agent(ctx, replicate.RoleSource, src)
	if err != nil {
		return "", err
	}
	best := map[string]time.Duration{}
	order := []string{"tar|tar", "tar|tar+sync", "Snapshot (in process)", "agent push (loopback HTTP)"}
	for i := range o.runs {
		for j := range order {
			// Each round starts with the next contender, so none always
			// runs first (or right after another's writeback).
			name := order[(i+j)%len(order)]
			dst := filepath.Join(o.work, fmt.Sprintf("snap-%d", i))
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return "", err
			}
			var d time.Duration
			switch name {
			case "tar|tar":
				d, err = shell(ctx, fmt.Sprintf("tar -C %q -cf - . | tar -C %q -xf -", src, dst))
			case "tar|tar+sync":
				d, err = shell(ctx, fmt.Sprintf("tar -C %q -cf - . | tar -C %q -xf - && sync -f %q", src, dst, dst))
			case "Snapshot (in process)":
				start := time.Now()
				_, err = replicate.Snapshot(ctx, src, dst)
				d = time.Since(start)
			default:
				var tu string
				tu, err = e.agent(ctx, replicate.RoleTarget, dst)
				if err == nil {
					var m replicate.Method
					m, err = replicate.NewMethod(replicate.MethodConfig{Kind: replicate.MethodSnapshot,
						Src: replicate.Endpoint{Agent: srcAgent}, Dst: replicate.Endpoint{Agent: tu}, Token: benchToken})
					if err == nil {
						start := time.Now()
						_, err = m.Full(ctx)
						d = time.Since(start)
					}
					e.stopAgent(dst)
				}
			}
			if err != nil {
				return "", fmt.Errorf("snapshot %s: %w", name, err)
			}
			fmt.Fprintf(log, "snapshot run %d %-28s %s\n", i+1, name, d.Round(time.Millisecond))
			if b, ok := best[name]; !ok || d < b {
				best[name] = d
			}
			if err := os.RemoveAll(dst); err != nil {
				return "", err
			}
			// Let writeback of the previous copy settle before the next.
			_, _ = shell(ctx, "sync")
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "SNAPSHOT of %s (best of %d; throughput, ratio to tar|tar)\n", human(o.size), o.runs)
	base := best["tar|tar"]
	for _, name := range order {
		d := best[name]
		fmt.Fprintf(&b, "  %-28s %8s  %7.1f MB/s  %.2fx\n", name, d.Round(time.Millisecond), float64(o.size)/d.Seconds()/1e6, base.Seconds()/d.Seconds())
	}
	return b.String(), nil
}

// contender is one way to bring a copy of src up to date.
type contender struct {
	name string
	dst  string
	run  func() error
	wire *counter
}

// benchIncremental copies src to an rsync daemon's directories and to a
// target agent, then o.changes times changes 1% of src and brings every
// copy up to date, counting the bytes on the wire to each receiver and
// timing each. rsync runs twice: as is, and with --fsync (durable like
// Phoenix, which fsyncs every file it writes). The first change finds
// Phoenix's chunk cache cold; the medians of the ratios over the others
// (warm) are the figures to report: one run on a shared machine is noise.
func benchIncremental(ctx context.Context, o options, e *env, src string, log io.Writer) (string, error) {
	cs, err := setupIncremental(ctx, o, e, src)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "INCREMENTAL after 1%% of %s changed (wire: bytes both ways through a counting proxy; ratios to rsync)\n", human(o.size))
	var warmTime, warmWire []float64 // Phoenix's ratios to plain rsync on warm changes
	for round := range o.changes {
		label := fmt.Sprintf("change %d (chunk cache warm)", round+1)
		if round == 0 {
			label = "change 1 (chunk cache cold: chunk lists fetched)"
		}
		changed, err := change(src, o.size, uint64(round+1))
		if err != nil {
			return "", err
		}
		_, _ = shell(ctx, "sync")
		fmt.Fprintf(&b, "  %s, %s changed:\n", label, human(changed))
		results := map[string][2]float64{} // seconds and bytes
		for i := range cs {
			c := cs[(i+round)%len(cs)] // alternate who goes first
			start := time.Now()
			if err := c.run(); err != nil {
				return "", fmt.Errorf("%s: %w", c.name, err)
			}
			d, wire := time.Since(start), c.wire.take()
			_, _ = shell(ctx, "sync")
			if err := sameTree(src, c.dst); err != nil {
				return "", fmt.Errorf("after the %s: %s differs from the source: %w", label, c.name, err)
			}
			fmt.Fprintf(log, "incremental %d: %s %s, wire %s\n", round+1, c.name, d.Round(time.Millisecond), human(wire))
			results[c.name] = [2]float64{d.Seconds(), float64(wire)}
		}
		for _, c := range cs {
			r := results[c.name]
			fmt.Fprintf(&b, "    %-34s wire %10s  time %8s   wire %.3fx  time %.3fx\n", c.name, human(int64(r[1])),
				time.Duration(r[0]*float64(time.Second)).Round(time.Millisecond), r[1]/results[cs[0].name][1], r[0]/results[cs[0].name][0])
		}
		if round > 0 {
			ours, rs := results[cs[len(cs)-1].name], results[cs[0].name]
			warmTime, warmWire = append(warmTime, ours[0]/rs[0]), append(warmWire, ours[1]/rs[1])
		}
	}
	fmt.Fprintf(&b, "  phoenix / rsync -a --delete, median of %d warm changes: wire %.3fx (target <= 1.1), time %.3fx (target <= 1)\n",
		len(warmTime), median(warmWire), median(warmTime))
	return b.String(), nil
}

// setupIncremental makes the three copies of src and their contenders:
// rsync, rsync --fsync, and Phoenix's incremental method between agents.
func setupIncremental(ctx context.Context, o options, e *env, src string) ([]contender, error) {
	rsDst, rsSyncDst, ourDst := filepath.Join(o.work, "rsync-dst"), filepath.Join(o.work, "rsync-fsync-dst"), filepath.Join(o.work, "agent-dst")
	for _, d := range []string{rsDst, rsSyncDst} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		if _, err := shell(ctx, fmt.Sprintf("tar -C %q -cf - . | tar -C %q -xf -", src, d)); err != nil {
			return nil, err
		}
	}
	rsAddr, err := e.rsyncDaemon(ctx, map[string]string{"plain": rsDst, "durable": rsSyncDst})
	if err != nil {
		return nil, err
	}
	rsProxy, err := e.proxy(rsAddr)
	if err != nil {
		return nil, err
	}
	rsSyncProxy, err := e.proxy(rsAddr)
	if err != nil {
		return nil, err
	}
	srcAgent, err := e.agent(ctx, replicate.RoleSource, src)
	if err != nil {
		return nil, err
	}
	tgtAgent, err := e.agent(ctx, replicate.RoleTarget, ourDst)
	if err != nil {
		return nil, err
	}
	ourProxy, err := e.proxy(strings.TrimPrefix(tgtAgent, "http://"))
	if err != nil {
		return nil, err
	}
	m, err := replicate.NewMethod(replicate.MethodConfig{Kind: replicate.MethodIncremental,
		Src: replicate.Endpoint{Agent: srcAgent}, Dst: replicate.Endpoint{Agent: "http://" + ourProxy.addr()}, Token: benchToken})
	if err != nil {
		return nil, err
	}
	if _, err := m.Full(ctx); err != nil {
		return nil, fmt.Errorf("initial snapshot: %w", err)
	}
	rsync := func(p *counter, module string, extra string) func() error {
		return func() error {
			_, err := shell(ctx, fmt.Sprintf("rsync -a --delete %s %q/ rsync://%s/%s/", extra, src, p.addr(), module))
			return err
		}
	}
	cs := []contender{
		{name: "rsync -a --delete (daemon)", dst: rsDst, run: rsync(rsProxy, "plain", ""), wire: rsProxy},
		{name: "rsync -a --delete --fsync", dst: rsSyncDst, run: rsync(rsSyncProxy, "durable", "--fsync"), wire: rsSyncProxy},
		{name: "phoenix incremental (agents)", dst: ourDst, run: func() error {
			_, err := m.Incremental(ctx)
			return err
		}, wire: ourProxy},
	}
	for _, c := range cs[:2] { // both in sync before the change
		if err := c.run(); err != nil {
			return nil, err
		}
	}
	for _, c := range cs {
		c.wire.take()
	}
	return cs, nil
}

// sameTree checks that dst holds src's regular files with the same
// content, and nothing else.
func sameTree(src, dst string) error {
	want, err := hashTree(src)
	if err != nil {
		return err
	}
	got, err := hashTree(dst)
	if err != nil {
		return err
	}
	for p, h := range want {
		if got[p] != h {
			return fmt.Errorf("%s differs or is missing", p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			return fmt.Errorf("%s is extra", p)
		}
	}
	return nil
}

// median is the median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s) == 0 {
		return math.NaN()
	}
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func hashTree(dir string) (map[string][32]byte, error) {
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := blake3.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		out[rel] = sum
		return nil
	})
	return out, err
}
