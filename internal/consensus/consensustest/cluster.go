package consensustest

import "github.com/vigil-observability/vigil/internal/consensus"

// Running are the indexes of the nodes that run (are not nil), for a
// backend's test cluster that keeps a stopped node's slot empty.
func Running[N any](nodes []*N) []int {
	var idx []int
	for i, n := range nodes {
		if n != nil {
			idx = append(idx, i)
		}
	}
	return idx
}

// AgreedLeader is the node among nodes[idx...] that leads, when all of them
// name the same leader in a term above minTerm and exactly one of them is
// that leader (LeaderInfo.Self).
func AgreedLeader[N interface{ Leader() consensus.LeaderInfo }](nodes []N, idx []int, minTerm uint64) (int, bool) {
	leader := -1
	var id string
	for _, i := range idx {
		info := nodes[i].Leader()
		if info.ID == "" || info.Term <= minTerm || (id != "" && info.ID != id) {
			return -1, false
		}
		id = info.ID
		if info.Self {
			if leader != -1 {
				return -1, false
			}
			leader = i
		}
	}
	return leader, leader != -1
}
