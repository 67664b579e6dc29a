package depmap

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/procfs"

	"github.com/phoenixsre/phoenix"
)

// PIDSource lists the processes of the protected components on this host:
// the provider that started them knows.
type PIDSource interface {
	ComponentPIDs(ctx context.Context) (map[int]phoenix.ComponentID, error)
}

// PIDMap is a fixed PIDSource.
type PIDMap map[int]phoenix.ComponentID

var _ PIDSource = PIDMap(nil)

// ComponentPIDs implements PIDSource.
func (m PIDMap) ComponentPIDs(context.Context) (map[int]phoenix.ComponentID, error) { return m, nil }

// ProcResolver resolves a client on this host by the process that owns its
// socket, which is what works when every component talks over loopback
// and so shares one address: the kernel's socket table (/proc/net/tcp and
// tcp6) gives the socket whose local address is the client's address and
// port, /proc/PID/fd gives the process holding it, and that process, or
// its nearest ancestor, is one of the PIDSource's. It reads /proc through
// the prometheus/procfs parsers, so it needs Linux, the same network
// namespace as the clients, and the right to read their /proc/PID/fd (root,
// or the same user). A connection already closed when it looks is not
// found. Each resolution reads the socket tables and the file descriptors
// of the components' processes, falling back to every process: a few
// milliseconds on a host with hundreds of processes.
type ProcResolver struct {
	fs   procfs.FS
	pids PIDSource
}

var _ Resolver = (*ProcResolver)(nil)

// NewProcResolver returns a resolver reading the proc file system mounted
// at procRoot ("" means /proc).
func NewProcResolver(pids PIDSource, procRoot string) (*ProcResolver, error) {
	if pids == nil {
		return nil, errors.New("proc resolver: a PIDSource is required")
	}
	if procRoot == "" {
		procRoot = procfs.DefaultMountPoint
	}
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return nil, fmt.Errorf("proc resolver: %w", err)
	}
	return &ProcResolver{fs: fs, pids: pids}, nil
}

// maxAncestors bounds the walk from a socket's process up to a component's.
const maxAncestors = 64

// ResolveClient implements Resolver.
func (p *ProcResolver) ResolveClient(ctx context.Context, client netip.AddrPort) (phoenix.ComponentID, error) {
	inodes, err := p.socketInodes(client)
	if err != nil {
		return "", err
	}
	if len(inodes) == 0 {
		return "", fmt.Errorf("client %s: no socket has this local address here (closed already, or on another host or network namespace): %w", client, ErrUnknownClient)
	}
	owners, err := p.pids.ComponentPIDs(ctx)
	if err != nil {
		return "", fmt.Errorf("client %s: list component processes: %w", client, err)
	}
	known := make([]int, 0, len(owners))
	for pid := range owners {
		known = append(known, pid)
	}
	slices.Sort(known)
	for _, pid := range known { // the components' own processes first: cheap
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if p.holds(pid, inodes) {
			return owners[pid], nil
		}
	}
	procs, err := p.fs.AllProcs()
	if err != nil {
		return "", fmt.Errorf("client %s: list processes: %w", client, err)
	}
	for _, proc := range procs {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if owners[proc.PID] != "" || !p.holds(proc.PID, inodes) {
			continue
		}
		if c, ok := p.ancestorOwner(proc.PID, owners); ok {
			return c, nil
		}
		return "", fmt.Errorf("client %s: held by process %d, which belongs to no component: %w", client, proc.PID, ErrUnknownClient)
	}
	return "", fmt.Errorf("client %s: no process holds its socket: %w", client, ErrUnknownClient)
}

// socketInodes returns the inodes of the TCP sockets whose local end is
// client. Linux can give one ephemeral port to connections to different
// servers, so there may be several.
func (p *ProcResolver) socketInodes(client netip.AddrPort) (map[string]bool, error) {
	want := client.Addr().Unmap()
	inodes := make(map[string]bool)
	for _, read := range []func() (procfs.NetTCP, error){p.fs.NetTCP, p.fs.NetTCP6} {
		lines, err := read()
		if err != nil {
			if errors.Is(err, iofs.ErrNotExist) { // no IPv6 on this host
				continue
			}
			return nil, fmt.Errorf("read the socket table: %w", err)
		}
		for _, l := range lines {
			a, ok := netip.AddrFromSlice(l.LocalAddr)
			if ok && a.Unmap() == want && l.LocalPort == uint64(client.Port()) && l.Inode != 0 {
				inodes["socket:["+strconv.FormatUint(l.Inode, 10)+"]"] = true
			}
		}
	}
	return inodes, nil
}

// holds reports whether process pid has one of the sockets open. A process
// that has exited or hides its descriptors holds none.
func (p *ProcResolver) holds(pid int, inodes map[string]bool) bool {
	proc, err := p.fs.Proc(pid)
	if err != nil {
		return false
	}
	targets, err := proc.FileDescriptorTargets()
	if err != nil {
		return false
	}
	return slices.ContainsFunc(targets, func(t string) bool { return inodes[t] })
}

// ancestorOwner walks up from pid to the nearest process of a component.
func (p *ProcResolver) ancestorOwner(pid int, owners map[int]phoenix.ComponentID) (phoenix.ComponentID, bool) {
	for range maxAncestors {
		proc, err := p.fs.Proc(pid)
		if err != nil {
			return "", false
		}
		st, err := proc.Stat()
		if err != nil || st.PPID <= 1 {
			return "", false
		}
		pid = st.PPID
		if c, ok := owners[pid]; ok {
			return c, true
		}
	}
	return "", false
}

// ListenerPIDs is a PIDSource for one host that needs no help from the
// processes: it finds each component's process as the one holding the
// socket listening on the component's address (from the same socket table
// and file descriptors ProcResolver reads). Results are kept for TTL, since
// a listener changes only when an instance is replaced.
type ListenerPIDs struct {
	p     *ProcResolver
	addrs func() map[netip.AddrPort]phoenix.ComponentID
	ttl   time.Duration

	mu     sync.Mutex
	at     time.Time
	cached map[int]phoenix.ComponentID
}

var _ PIDSource = (*ListenerPIDs)(nil)

// NewListenerPIDs returns a PIDSource over the components' listen
// addresses, which addrs gives (it is called at most once per ttl).
func NewListenerPIDs(addrs func() map[netip.AddrPort]phoenix.ComponentID, procRoot string, ttl time.Duration) (*ListenerPIDs, error) {
	p, err := NewProcResolver(PIDMap{}, procRoot)
	if err != nil {
		return nil, err
	}
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	return &ListenerPIDs{p: p, addrs: addrs, ttl: ttl}, nil
}

// ComponentPIDs implements PIDSource.
func (l *ListenerPIDs) ComponentPIDs(ctx context.Context) (map[int]phoenix.ComponentID, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cached != nil && time.Since(l.at) < l.ttl {
		return l.cached, nil
	}
	procs, err := l.p.fs.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	out := map[int]phoenix.ComponentID{}
	for addr, comp := range l.addrs() {
		inodes, err := l.p.socketInodes(addr)
		if err != nil {
			return nil, err
		}
		if len(inodes) == 0 {
			continue
		}
		for _, proc := range procs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if l.p.holds(proc.PID, inodes) {
				out[proc.PID] = comp
				break
			}
		}
	}
	l.cached, l.at = out, time.Now()
	return out, nil
}
