package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// allSections are the report's sections in their order, by the names
// -sections and -skip take.
var allSections = []string{"traces", "metrics", "logs"}

// sectionOwns says what of a report belongs to a section: its heading,
// the prefixes of its losses, the profile phases and the systems only it
// runs, and what marks its command lines.
var sectionOwns = map[string]struct {
	heading        string
	losses, phases []string
	systems        []string
	commands       []string
}{
	"traces": {"## Traces", []string{"traces:"}, []string{"traces ingest", "trace queries"},
		[]string{"Jaeger", "telemetrygen"}, []string{"vigil-traces", "Jaeger", "telemetrygen", "vigil-load (traces"}},
	"metrics": {"## Metrics", []string{"metrics:", "PromQL:"}, []string{"remote_write ingest"},
		[]string{"Prometheus", "VictoriaMetrics"}, []string{"vigil-metrics", "Prometheus", "VictoriaMetrics", "remote_write"}},
	"logs": {"## Logs", []string{"logs:", "log queries:"}, []string{"logs ingest", "log queries"},
		[]string{"VictoriaLogs"}, []string{"vigil-logs", "vigil-logs-loki", "VictoriaLogs", "vigil-load (logs", "log query"}},
}

// selectSections turns -sections (the sections to run; empty: all) and
// -skip (the sections to leave out) into the set to run.
func selectSections(sections, skip string) (map[string]bool, error) {
	run := map[string]bool{}
	names := func(list string) ([]string, error) {
		var out []string
		for _, s := range strings.Split(list, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			if !slices.Contains(allSections, s) {
				return nil, fmt.Errorf("unknown section %q (want %s)", s, strings.Join(allSections, ", "))
			}
			out = append(out, s)
		}
		return out, nil
	}
	chosen, err := names(sections)
	if err != nil {
		return nil, err
	}
	if len(chosen) == 0 {
		chosen = allSections
	}
	for _, s := range chosen {
		run[s] = true
	}
	skipped, err := names(skip)
	if err != nil {
		return nil, err
	}
	for _, s := range skipped {
		delete(run, s)
	}
	return run, nil
}

// mdSection is one "## " section of a report, its heading line first.
type mdSection struct{ heading, body string }

// splitReport cuts a report into what comes before the first "## "
// heading and its sections.
func splitReport(md string) (string, []mdSection) {
	parts := strings.Split("\n"+md, "\n## ")
	pre := strings.TrimPrefix(parts[0], "\n")
	var secs []mdSection
	for _, p := range parts[1:] {
		head, body, _ := strings.Cut(p, "\n")
		secs = append(secs, mdSection{"## " + head, body})
	}
	return pre, secs
}

// mergeReport takes the sections a partial run made (cur) into the last
// report (prev): the sections run replace theirs, with their losses,
// causes, profiles, versions and commands; everything of the other
// sections stays as it was, and the preamble says which sections are
// from which run.
func mergeReport(prev, cur string, run map[string]bool, rep *report) string {
	prevPre, prevSecs := splitReport(prev)
	_, curSecs := splitReport(cur)
	curBy := func(prefix string) (mdSection, bool) {
		for _, s := range curSecs {
			if strings.HasPrefix(s.heading, prefix) {
				return s, true
			}
		}
		return mdSection{}, false
	}
	owned := func(pred func(sec string) bool) bool {
		for sec := range run {
			if pred(sec) {
				return true
			}
		}
		return false
	}
	var ran []string
	for _, s := range allSections {
		if run[s] {
			ran = append(ran, s)
		}
	}
	var b strings.Builder
	b.WriteString(mergePreamble(prevPre, cur, ran, rep))
	for i, ps := range prevSecs {
		out := ps
		switch {
		case strings.HasPrefix(ps.heading, "## Versions"):
			if cs, ok := curBy("## Versions"); ok {
				out.body = mergeVersions(ps.body, cs.body, ran, owned)
			}
		case strings.HasPrefix(ps.heading, "## Method"):
			if cs, ok := curBy(ps.heading); ok {
				out = cs
			}
		case strings.HasPrefix(ps.heading, "## Machine"):
			if cs, ok := curBy(ps.heading); ok {
				out.body = mergeMachine(ps.body, cs.body, ran)
			}
		case strings.HasPrefix(ps.heading, "## Where vigil loses"):
			cs, _ := curBy("## Where vigil loses")
			out.body = mergeLosses(ps.body, cs.body, owned)
		case strings.HasPrefix(ps.heading, "## Commands"):
			cs, _ := curBy("## Commands")
			out.body = mergeCommands(ps.body, cs.body, owned)
		default:
			for sec := range run {
				if strings.HasPrefix(ps.heading, sectionOwns[sec].heading) {
					if cs, ok := curBy(sectionOwns[sec].heading); ok {
						out = cs
					}
				}
			}
		}
		// Sections are apart by one blank line; the last ends the file.
		body := strings.TrimRight(out.body, "\n") + "\n"
		if i < len(prevSecs)-1 {
			body += "\n"
		}
		b.WriteString(out.heading + "\n" + body)
	}
	return b.String()
}

// mergePreamble keeps the last full run's title line and introduction,
// with cur's title, and says which sections a later run replaced.
func mergePreamble(prevPre, cur string, ran []string, rep *report) string {
	curTitle, _, _ := strings.Cut(cur, "\n")
	_, rest, _ := strings.Cut(prevPre, "\n")
	note := fmt.Sprintf("The %s section%s from a later run of %s alone (`-sections %s`) on %s, %s in all.",
		strings.Join(ran, " and "), map[bool]string{true: "s are", false: " is"}[len(ran) > 1],
		map[bool]string{true: "them", false: "it"}[len(ran) > 1], strings.Join(ran, ","),
		rep.started.UTC().Format("2006-01-02 15:04 UTC"), rep.finished.Sub(rep.started).Round(time.Second))
	var paras []string
	for _, p := range strings.Split(strings.TrimSpace(rest), "\n\n") {
		if strings.HasPrefix(p, "The "+strings.Join(ran, " and ")+" section") {
			continue // the note of an earlier partial run of the same sections
		}
		paras = append(paras, p)
	}
	paras = append(paras, note)
	return curTitle + "\n\n" + strings.Join(paras, "\n\n") + "\n\n"
}

// mergeMachine keeps the full run's machine and adds what differed in
// the partial run, a kernel update say, marked as the partial run's.
func mergeMachine(prev, cur string, ran []string) string {
	mark := "- " + strings.Join(ran, ", ") + " section: "
	var prevLines []string
	for _, l := range strings.Split(strings.TrimSpace(prev), "\n") {
		if !strings.HasPrefix(l, mark) { // an earlier partial run's
			prevLines = append(prevLines, l)
		}
	}
	out := slices.Clone(prevLines)
	for _, l := range strings.Split(strings.TrimSpace(cur), "\n") {
		if l != "" && !slices.Contains(prevLines, l) {
			out = append(out, mark+strings.TrimPrefix(l, "- "))
		}
	}
	return "\n" + strings.Join(out, "\n") + "\n"
}

// mergeVersions takes the rows of the systems the run used from cur and
// the others from prev; vigil keeps its row from the full run, with a row
// for the partial run's vigil when that differs.
func mergeVersions(prev, cur string, ran []string, owned func(func(string) bool) bool) string {
	rows := func(body string) (head []string, rs []string) {
		for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
			if strings.HasPrefix(l, "| ") && !strings.HasPrefix(l, "| system ") {
				rs = append(rs, l)
			} else {
				head = append(head, l)
			}
		}
		return head, rs
	}
	system := func(row string) string { return strings.TrimSpace(strings.Split(row, "|")[1]) }
	head, prevRows := rows(prev)
	_, curRows := rows(cur)
	find := func(rs []string, sys string) (string, bool) {
		for _, r := range rs {
			if system(r) == sys {
				return r, true
			}
		}
		return "", false
	}
	var out []string
	for _, r := range curRows {
		sys := system(r)
		isOwned := owned(func(sec string) bool { return slices.Contains(sectionOwns[sec].systems, sys) })
		if p, ok := find(prevRows, sys); ok && !isOwned {
			out = append(out, p)
			if sys == "vigil" {
				// Earlier partial runs' vigil rows stay, but for the
				// sections this run replaces.
				for _, pr := range prevRows {
					secs, ok := partialSections(system(pr))
					if ok && !slices.ContainsFunc(secs, func(s string) bool { return slices.Contains(ran, s) }) {
						out = append(out, pr)
					}
				}
				if p != r {
					out = append(out, strings.Replace(r, "| vigil |", "| vigil ("+strings.Join(ran, ", ")+" section) |", 1))
				}
			}
			continue
		}
		out = append(out, r)
	}
	return "\n" + strings.Join(append(head, out...), "\n") + "\n\n"
}

// partialSections reads the sections of a partial run's vigil row's
// system, "vigil (logs, traces section)".
func partialSections(sys string) ([]string, bool) {
	inner, ok := strings.CutPrefix(sys, "vigil (")
	if !ok {
		return nil, false
	}
	if inner, ok = strings.CutSuffix(inner, " section)"); !ok {
		return nil, false
	}
	return strings.Split(inner, ", "), true
}

// mergeLosses keeps prev's losses, causes and profiles of the sections not
// run and adds cur's.
func mergeLosses(prev, cur string, owned func(func(string) bool) bool) string {
	ownedLoss := func(line string) bool {
		return owned(func(sec string) bool {
			for _, p := range sectionOwns[sec].losses {
				if strings.HasPrefix(strings.TrimPrefix(line, "- "), p) {
					return true
				}
			}
			return false
		})
	}
	ownedProfile := func(p string) bool {
		return owned(func(sec string) bool {
			for _, ph := range sectionOwns[sec].phases {
				if strings.HasPrefix(p, "CPU profile of vigil during "+ph) {
					return true
				}
			}
			return false
		})
	}
	split := func(body string) (list, paras []string) {
		for _, p := range strings.Split(strings.TrimSpace(body), "\n\n") {
			switch {
			case p == "" || p == "Nowhere in this run.":
			case strings.HasPrefix(p, "- "):
				list = append(list, strings.Split(p, "\n")...)
			default:
				paras = append(paras, p)
			}
		}
		return list, paras
	}
	prevList, prevParas := split(prev)
	curList, curParas := split(cur)
	var list []string
	for _, l := range prevList {
		if !ownedLoss(l) {
			list = append(list, l)
		}
	}
	list = append(list, curList...)
	var paras []string
	skipFence := false
	for _, p := range prevParas {
		if skipFence && strings.HasPrefix(p, "```") {
			skipFence = false
			continue
		}
		skipFence = false
		if ownedProfile(p) {
			skipFence = true
			continue
		}
		if ownedCause(p, ownedLoss) {
			continue
		}
		paras = append(paras, p)
	}
	for _, p := range curParas {
		if !slices.Contains(paras, p) {
			paras = append(paras, p)
		}
	}
	if len(list) == 0 {
		return "\nNowhere in this run.\n\n"
	}
	return "\n" + strings.Join(append([]string{strings.Join(list, "\n")}, paras...), "\n\n") + "\n\n"
}

// ownedCause says whether p is the known cause of a loss of a section
// run: the same paragraph, or one with the same lead-in ("Log queries:"),
// since the text may have changed since.
func ownedCause(p string, ownedLoss func(string) bool) bool {
	lead := func(s string) string {
		l, _, ok := strings.Cut(s, ": ")
		if !ok {
			return s
		}
		return l
	}
	for _, c := range knownCauses {
		if (c.text == p || lead(c.text) == lead(p)) && ownedLoss(c.prefix) {
			return true
		}
	}
	return false
}

// mergeCommands keeps cur's opening lines (how to run it) and prev's
// command lines of the sections not run, then adds cur's.
func mergeCommands(prev, cur string, owned func(func(string) bool) bool) string {
	blocks := func(body string) []string {
		body = strings.TrimSpace(body)
		body = strings.TrimPrefix(body, "```sh\n")
		body = strings.TrimSuffix(body, "```")
		return strings.Split(strings.TrimSpace(body), "\n\n")
	}
	ownedBlock := func(b string) bool {
		head, _, _ := strings.Cut(b, "\n")
		return owned(func(sec string) bool {
			for _, m := range sectionOwns[sec].commands {
				if strings.Contains(b, "$WORK/"+m+"/") || strings.Contains(head, m) {
					return true
				}
			}
			return false
		})
	}
	pb, cb := blocks(prev), blocks(cur)
	out := []string{cb[0]}
	for _, b := range pb[1:] {
		if !ownedBlock(b) {
			out = append(out, b)
		}
	}
	out = append(out, cb[1:]...)
	return "\n```sh\n" + strings.Join(out, "\n\n") + "\n```\n"
}
