package diag

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
)

// runtimeMetrics renders every runtime/metrics sample as name=value.
// Histograms are summarised as their total count plus non-empty buckets,
// which is what an operator reading a text file can use.
func runtimeMetrics() []byte {
	descs := metrics.All()
	samples := make([]metrics.Sample, len(descs))
	for i, d := range descs {
		samples[i].Name = d.Name
	}
	metrics.Read(samples)
	var b bytes.Buffer
	for _, s := range samples {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			fmt.Fprintf(&b, "%s=%d\n", s.Name, s.Value.Uint64())
		case metrics.KindFloat64:
			fmt.Fprintf(&b, "%s=%g\n", s.Name, s.Value.Float64())
		case metrics.KindFloat64Histogram:
			h := s.Value.Float64Histogram()
			var total uint64
			var parts []string
			for i, c := range h.Counts {
				total += c
				if c > 0 {
					parts = append(parts, fmt.Sprintf("[%g,%g):%d", h.Buckets[i], h.Buckets[i+1], c))
				}
			}
			fmt.Fprintf(&b, "%s=histogram count=%d %s\n", s.Name, total, strings.Join(parts, " "))
		default:
			fmt.Fprintf(&b, "%s=unsupported\n", s.Name)
		}
	}
	return b.Bytes()
}

// tcpStates maps the kernel's hex TCP state codes (include/net/tcp_states.h).
var tcpStates = map[string]string{
	"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
	"05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
	"09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING", "0C": "NEW_SYN_RECV",
}

// tcpSocket is one row of /proc/net/tcp{,6}.
type tcpSocket struct {
	proto  string
	local  netip.AddrPort
	remote netip.AddrPort
	state  string
	inode  string
}

// tcpConnections lists this process's TCP sockets. /proc/net/tcp lists every
// socket in the network namespace, so rows are kept only when their inode is
// one of our own file descriptors (/proc/self/fd/* -> socket:[inode]).
// Without /proc (non-Linux, restricted containers) it returns a note.
func tcpConnections(procRoot string) []byte {
	inodes, err := socketInodes(filepath.Join(procRoot, "self", "fd"))
	if err != nil {
		return fmt.Appendf(nil, "tcp connections unavailable: %v\n", err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%-5s %-47s %-47s %-12s %s\n", "proto", "local", "remote", "state", "inode")
	var notes []string
	for _, proto := range []string{"tcp", "tcp6"} {
		f, err := os.Open(filepath.Join(procRoot, "net", proto))
		if err != nil {
			notes = append(notes, fmt.Sprintf("# %s unavailable: %v", proto, err))
			continue
		}
		socks, err := parseProcNetTCP(f, proto)
		_ = f.Close()
		if err != nil {
			notes = append(notes, fmt.Sprintf("# %s: %v", proto, err))
		}
		for _, s := range socks {
			if _, ok := inodes[s.inode]; ok {
				fmt.Fprintf(&b, "%-5s %-47s %-47s %-12s %s\n", s.proto, s.local, s.remote, s.state, s.inode)
			}
		}
	}
	for _, n := range notes {
		b.WriteString(n + "\n")
	}
	return b.Bytes()
}

// socketInodes returns the inodes of the sockets among the fds in fdDir.
func socketInodes(fdDir string) (map[string]struct{}, error) {
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", fdDir, err)
	}
	inodes := make(map[string]struct{})
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil {
			continue // fd closed since ReadDir
		}
		if in, ok := strings.CutPrefix(link, "socket:["); ok {
			inodes[strings.TrimSuffix(in, "]")] = struct{}{}
		}
	}
	return inodes, nil
}

// parseProcNetTCP parses the /proc/net/tcp or /proc/net/tcp6 format. Rows it
// cannot parse are skipped and reported in the error; parsed rows are kept.
func parseProcNetTCP(r io.Reader, proto string) ([]tcpSocket, error) {
	sc := bufio.NewScanner(r)
	var socks []tcpSocket
	var bad []string
	first := true
	for sc.Scan() {
		if first { // header
			first = false
			continue
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 10 {
			bad = append(bad, line)
			continue
		}
		local, err1 := parseHexAddrPort(f[1])
		remote, err2 := parseHexAddrPort(f[2])
		if err1 != nil || err2 != nil {
			bad = append(bad, line)
			continue
		}
		state, ok := tcpStates[strings.ToUpper(f[3])]
		if !ok {
			state = "UNKNOWN(" + f[3] + ")"
		}
		socks = append(socks, tcpSocket{proto: proto, local: local, remote: remote, state: state, inode: f[9]})
	}
	slices.SortFunc(socks, func(a, b tcpSocket) int { return a.local.Compare(b.local) })
	if err := sc.Err(); err != nil {
		return socks, fmt.Errorf("reading %s: %w", proto, err)
	}
	if len(bad) > 0 {
		return socks, fmt.Errorf("%d unparsable %s rows, first: %q", len(bad), proto, bad[0])
	}
	return socks, nil
}

// parseHexAddrPort decodes "0100007F:1F90". The kernel prints the address as
// 32-bit words in host byte order, hence the NativeEndian round trip; the
// port is printed as a plain number.
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	addrHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("malformed address %q", s)
	}
	raw, err := hex.DecodeString(addrHex)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("malformed address %q", s)
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("malformed port %q: %w", s, err)
	}
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}
