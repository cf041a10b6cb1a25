package memtrim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// pageOutExecutable advises MADV_PAGEOUT on every mapping of the running
// executable that is read-only and holds no anonymous page: its code and
// read-only data, never the RELRO segment the dynamic linker wrote before
// protecting it (its written pages are private copies, anonymous; paging
// the mapping out would read the unrelocated bytes back from the file).
// The kernel reclaims only pages no other process maps.
func pageOutExecutable() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("memtrim: %w", err)
	}
	maps, err := cleanReadOnlyMappings("/proc/self/smaps", exe)
	if err != nil {
		return 0, err
	}
	// The kernel pages out only clean file pages. A binary just built or
	// copied still has dirty pages in the page cache until writeback
	// (up to half a minute); writing them now lets them go. For a binary
	// on disk for longer this costs nothing.
	if f, err := os.Open("/proc/self/exe"); err == nil {
		_ = f.Sync()
		_ = f.Close()
	}
	var n int64
	for _, m := range maps {
		// MADV_PAGEOUT exists since Linux 5.4; older kernels answer
		// EINVAL and keep the pages, which is only a missed saving, not
		// worth a warning at every start.
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_PAGEOUT)
		if errno == unix.EINVAL {
			return 0, nil
		}
		if errno != 0 {
			return n, fmt.Errorf("memtrim: madvise %#x-%#x: %w", m.start, m.end, errno)
		}
		n += int64(m.end - m.start)
	}
	return n, nil
}

type mapping struct{ start, end uintptr }

// cleanReadOnlyMappings reads an smaps file and returns the mappings of
// path that are r-xp or r--p with no anonymous page. (Private_Dirty is no
// test: a file just written, such as a binary just built, has dirty pages
// in the page cache that count there until they are written back.)
func cleanReadOnlyMappings(smaps, path string) ([]mapping, error) {
	f, err := os.Open(smaps)
	if err != nil {
		return nil, fmt.Errorf("memtrim: %w", err)
	}
	defer f.Close()
	var (
		out  []mapping
		cur  mapping
		want bool // cur is a read-only mapping of path
		// clean stays true until cur's Anonymous line says otherwise.
		clean bool
	)
	flush := func() {
		if want && clean {
			out = append(out, cur)
		}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		if m, perms, name, ok := parseHeader(line); ok {
			flush()
			cur = m
			want = name == path && (perms == "r-xp" || perms == "r--p")
			clean = true
			continue
		}
		if !want {
			continue
		}
		if v, ok := bytes.CutPrefix(line, []byte("Anonymous:")); ok {
			if f := bytes.Fields(v); len(f) == 0 || string(f[0]) != "0" {
				clean = false
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("memtrim: read %s: %w", smaps, err)
	}
	flush()
	return out, nil
}

// parseHeader parses a mapping's first line in smaps,
// "start-end perms offset dev inode [name]".
func parseHeader(line []byte) (m mapping, perms, name string, ok bool) {
	fields := bytes.Fields(line)
	if len(fields) < 5 || bytes.HasSuffix(fields[0], []byte(":")) {
		return m, "", "", false
	}
	lo, hi, found := bytes.Cut(fields[0], []byte("-"))
	if !found {
		return m, "", "", false
	}
	start, err1 := strconv.ParseUint(string(lo), 16, 64)
	end, err2 := strconv.ParseUint(string(hi), 16, 64)
	if err1 != nil || err2 != nil {
		return m, "", "", false
	}
	if len(fields) >= 6 {
		// A name may hold spaces; it is the rest of the line after the
		// inode.
		i := bytes.Index(line, fields[5])
		name = string(bytes.TrimRight(line[i:], " "))
	}
	return mapping{uintptr(start), uintptr(end)}, string(fields[1]), name, true
}
