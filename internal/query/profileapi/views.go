package profileapi

import (
	"cmp"
	"slices"

	"github.com/google/pprof/profile"
)

// Function is one line of the top functions.
type Function struct {
	Name string `json:"name"`
	File string `json:"file,omitempty"`
	// Self is the value of the samples whose innermost frame is the
	// function; Total of those with the function anywhere on the stack
	// (counted once per sample).
	Self  int64 `json:"self"`
	Total int64 `json:"total"`
}

// frames calls f with each of a sample's functions, innermost first,
// inlined frames included.
func frames(s *profile.Sample, f func(fn *profile.Function)) {
	for _, loc := range s.Location {
		for _, line := range loc.Line {
			if line.Function != nil {
				f(line.Function)
			}
		}
	}
}

// Top returns the functions of p (a merged, one-type profile) by self
// value, largest first, at most limit of them, and the profile's total.
func Top(p *profile.Profile, limit int) (fns []Function, total int64) {
	byName := map[string]*Function{}
	get := func(fn *profile.Function) *Function {
		f := byName[fn.Name]
		if f == nil {
			f = &Function{Name: fn.Name, File: fn.Filename}
			byName[fn.Name] = f
		}
		return f
	}
	seen := map[*Function]bool{}
	for _, s := range p.Sample {
		v := s.Value[0]
		total += v
		first := true
		clear(seen)
		frames(s, func(fn *profile.Function) {
			f := get(fn)
			if first {
				f.Self += v
				first = false
			}
			if !seen[f] {
				seen[f] = true
				f.Total += v
			}
		})
	}
	for _, f := range byName {
		fns = append(fns, *f)
	}
	slices.SortFunc(fns, func(a, b Function) int {
		return cmp.Or(cmp.Compare(b.Self, a.Self), cmp.Compare(b.Total, a.Total), cmp.Compare(a.Name, b.Name))
	})
	if limit > 0 && len(fns) > limit {
		fns = fns[:limit]
	}
	return fns, total
}

// Node is one frame of a flame graph: the function, the value of the
// samples whose stacks pass through it from the root along this path
// (Total), of those that end in it (Self), and its callees, largest
// first.
type Node struct {
	Name     string  `json:"name"`
	Self     int64   `json:"self"`
	Total    int64   `json:"total"`
	Children []*Node `json:"children,omitempty"`
}

// OtherName names the node that stands for a parent's callees too small
// to draw.
const OtherName = "(other)"

// FlameGraph builds the call tree of p, root first. Callees whose total is
// below minFraction of the whole are folded into one OtherName node per
// parent, so that the answer's size stays bounded whatever the profile.
func FlameGraph(p *profile.Profile, minFraction float64) *Node {
	root := &Node{Name: "total"}
	index := map[*Node]map[string]*Node{}
	child := func(n *Node, name string) *Node {
		m := index[n]
		if m == nil {
			m = map[string]*Node{}
			index[n] = m
		}
		c := m[name]
		if c == nil {
			c = &Node{Name: name}
			m[name] = c
			n.Children = append(n.Children, c)
		}
		return c
	}
	var stack []string
	for _, s := range p.Sample {
		v := s.Value[0]
		stack = stack[:0]
		frames(s, func(fn *profile.Function) { stack = append(stack, fn.Name) })
		n := root
		n.Total += v
		for i := len(stack) - 1; i >= 0; i-- {
			n = child(n, stack[i])
			n.Total += v
		}
		n.Self += v
	}
	prune(root, int64(minFraction*float64(root.Total)))
	return root
}

// prune folds the children of n below floor into one OtherName child and
// sorts the rest, largest first, all the way down.
func prune(n *Node, floor int64) {
	kept := n.Children[:0]
	var other *Node
	for _, c := range n.Children {
		if c.Total >= floor && c.Total > 0 {
			kept = append(kept, c)
			continue
		}
		if other == nil {
			other = &Node{Name: OtherName}
		}
		other.Total += c.Total
		other.Self += c.Total
	}
	if other != nil {
		kept = append(kept, other)
	}
	n.Children = kept
	slices.SortFunc(n.Children, func(a, b *Node) int {
		return cmp.Or(cmp.Compare(b.Total, a.Total), cmp.Compare(a.Name, b.Name))
	})
	for _, c := range n.Children {
		if c.Name != OtherName {
			prune(c, floor)
		}
	}
	if len(n.Children) == 0 {
		n.Children = nil
	}
}
