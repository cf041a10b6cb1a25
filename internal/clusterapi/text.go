package clusterapi

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
)

// WriteText prints st for a terminal: the leader and term, then one line
// per member. An index or contact the answering node does not know (it
// knows its own only) is "-"; last contact is how long before now.
func WriteText(w io.Writer, st Status, now time.Time) error {
	leader := st.Leader
	if leader == "" {
		leader = "none known (an election is under way, or no quorum)"
	}
	if _, err := fmt.Fprintf(w, "leader: %s\nterm:   %d\n\n", leader, st.Term); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tSTATE\tVOTER\tCOMMIT\tAPPLIED\tLAST CONTACT")
	for _, m := range st.Members {
		voter := "yes"
		if !m.Voter {
			voter = "no"
		}
		contact := "-"
		if m.LastContact != nil {
			contact = now.Sub(*m.LastContact).Round(time.Millisecond).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.Address, m.State, voter, index(m.CommitIndex), index(m.AppliedIndex), contact)
	}
	return tw.Flush()
}

func index(i uint64) string {
	if i == 0 {
		return "-"
	}
	return strconv.FormatUint(i, 10)
}
