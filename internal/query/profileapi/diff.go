package profileapi

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/google/pprof/profile"

	"github.com/vigil-observability/vigil/internal/configcentre"
)

// DiffNode is one frame of a diff flame graph: the merged call trees of a
// baseline and a comparison, each frame with its total value in both and
// that value's share of its own range's whole, so that ranges of different
// lengths (or loads) compare.
type DiffNode struct {
	Name            string      `json:"name"`
	Baseline        int64       `json:"baseline"`
	Comparison      int64       `json:"comparison"`
	BaselineShare   float64     `json:"baseline_share"`
	ComparisonShare float64     `json:"comparison_share"`
	Children        []*DiffNode `json:"children,omitempty"`
}

// FunctionChange is one line of the top changes: a function's self value
// in both ranges, its shares of each whole, and Change, the comparison's
// share less the baseline's (positive: it grew).
type FunctionChange struct {
	Name            string  `json:"name"`
	File            string  `json:"file,omitempty"`
	BaselineSelf    int64   `json:"baseline_self"`
	ComparisonSelf  int64   `json:"comparison_self"`
	BaselineShare   float64 `json:"baseline_share"`
	ComparisonShare float64 `json:"comparison_share"`
	Change          float64 `json:"change"`
}

// share is v/total, 0 for an empty whole, rounded to 6 decimals so that
// answers are stable and small.
func share(v, total int64) float64 {
	if total == 0 {
		return 0
	}
	return math.Round(float64(v)/float64(total)*1e6) / 1e6
}

// DiffFlameGraph merges the call trees of base and comp (either may be nil:
// no samples) into one. Callees whose share is below minFraction in both
// ranges are folded into one OtherName node per parent.
func DiffFlameGraph(base, comp *profile.Profile, minFraction float64) *DiffNode {
	b, c := tree(base), tree(comp)
	root := diffTree(b, c, b.Total, c.Total)
	pruneDiff(root, minFraction)
	return root
}

func tree(p *profile.Profile) *Node {
	if p == nil {
		return &Node{Name: "total"}
	}
	return FlameGraph(p, 0)
}

// diffTree merges the nodes b and c (one may be nil) of the same path.
func diffTree(b, c *Node, bTotal, cTotal int64) *DiffNode {
	d := &DiffNode{}
	var bc, cc []*Node
	if b != nil {
		d.Name, d.Baseline, bc = b.Name, b.Total, b.Children
	}
	if c != nil {
		d.Name, d.Comparison, cc = c.Name, c.Total, c.Children
	}
	d.BaselineShare, d.ComparisonShare = share(d.Baseline, bTotal), share(d.Comparison, cTotal)
	byName := map[string]*Node{}
	for _, n := range cc {
		byName[n.Name] = n
	}
	for _, n := range bc {
		d.Children = append(d.Children, diffTree(n, byName[n.Name], bTotal, cTotal))
		delete(byName, n.Name)
	}
	for _, n := range cc {
		if byName[n.Name] != nil {
			d.Children = append(d.Children, diffTree(nil, n, bTotal, cTotal))
		}
	}
	return d
}

// pruneDiff folds the children of n below floor in both ranges into one
// OtherName child and sorts the rest, largest in either range first.
func pruneDiff(n *DiffNode, floor float64) {
	kept := n.Children[:0]
	var other *DiffNode
	for _, c := range n.Children {
		if c.Name != OtherName && (c.BaselineShare >= floor || c.ComparisonShare >= floor) &&
			(c.Baseline > 0 || c.Comparison > 0) {
			kept = append(kept, c)
			continue
		}
		if other == nil {
			other = &DiffNode{Name: OtherName}
		}
		other.Baseline += c.Baseline
		other.Comparison += c.Comparison
		other.BaselineShare += c.BaselineShare
		other.ComparisonShare += c.ComparisonShare
	}
	if other != nil {
		other.BaselineShare = math.Round(other.BaselineShare*1e6) / 1e6
		other.ComparisonShare = math.Round(other.ComparisonShare*1e6) / 1e6
		kept = append(kept, other)
	}
	n.Children = kept
	weight := func(d *DiffNode) float64 { return max(d.BaselineShare, d.ComparisonShare) }
	slices.SortFunc(n.Children, func(a, b *DiffNode) int {
		if a.Name == OtherName || b.Name == OtherName {
			return cmp.Compare(boolInt(a.Name == OtherName), boolInt(b.Name == OtherName))
		}
		return cmp.Or(cmp.Compare(weight(b), weight(a)), cmp.Compare(a.Name, b.Name))
	})
	for _, c := range n.Children {
		if c.Name != OtherName {
			pruneDiff(c, floor)
		}
	}
	if len(n.Children) == 0 {
		n.Children = nil
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TopChanges returns the functions of base and comp (either may be nil) by
// how much their share of self value changed, largest change first (a
// growth before a shrink of the same size), at most limit of them.
func TopChanges(base, comp *profile.Profile, limit int) []FunctionChange {
	byName := map[string]*FunctionChange{}
	var bTotal, cTotal int64
	add := func(p *profile.Profile, self func(*FunctionChange, int64)) int64 {
		if p == nil {
			return 0
		}
		fns, total := Top(p, 0)
		for _, f := range fns {
			fc := byName[f.Name]
			if fc == nil {
				fc = &FunctionChange{Name: f.Name, File: f.File}
				byName[f.Name] = fc
			}
			self(fc, f.Self)
		}
		return total
	}
	bTotal = add(base, func(f *FunctionChange, v int64) { f.BaselineSelf += v })
	cTotal = add(comp, func(f *FunctionChange, v int64) { f.ComparisonSelf += v })
	out := make([]FunctionChange, 0, len(byName))
	for _, f := range byName {
		f.BaselineShare, f.ComparisonShare = share(f.BaselineSelf, bTotal), share(f.ComparisonSelf, cTotal)
		f.Change = math.Round((f.ComparisonShare-f.BaselineShare)*1e6) / 1e6
		if f.BaselineSelf == 0 && f.ComparisonSelf == 0 {
			continue
		}
		out = append(out, *f)
	}
	slices.SortFunc(out, func(a, b FunctionChange) int {
		return cmpChange(a, b)
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

func cmpChange(a, b FunctionChange) int {
	return cmp.Or(cmp.Compare(math.Abs(b.Change), math.Abs(a.Change)), cmp.Compare(b.Change, a.Change), cmp.Compare(a.Name, b.Name))
}

// VersionRange is when service ran version according to its deploys
// (any order) between from and to: from its first deploy to the version
// (else from) to the first deploy away from it after that (else to). A
// rolling deploy's minutes, when old and new instances both run, belong
// to both versions. It is an error when no deploy went to or from the
// version.
func VersionRange(deploys []configcentre.Change, service, version string, from, to time.Time) (start, end time.Time, err error) {
	ds := slices.Clone(deploys)
	slices.SortStableFunc(ds, func(a, b configcentre.Change) int { return a.Time.Compare(b.Time) })
	start, end = from, to
	seen := false
	for _, d := range ds {
		if d.Kind != configcentre.KindDeploy || d.Service != service || d.From == d.To {
			continue
		}
		if d.To == version && !seen {
			start, seen = d.Time, true
		}
	}
	for _, d := range ds {
		if d.Kind != configcentre.KindDeploy || d.Service != service || d.From == d.To {
			continue
		}
		if d.From == version && !d.Time.Before(start) {
			end, seen = d.Time, true
			break
		}
	}
	if !seen {
		return start, end, fmt.Errorf("version: no deploy of service %q to or from version %q between %s and %s",
			service, version, from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	}
	return start, end, nil
}
