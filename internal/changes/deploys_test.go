package changes

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/promqltest"

	"github.com/vigil-observability/vigil/internal/configcentre"
)

func TestDeploys(t *testing.T) {
	// One sample a minute from time 0. checkout/c-1 goes from 1.4.2 to
	// 1.5.0 at 10m (the old series ends with a stale marker); c-2 stays;
	// payments goes to 2.0.0 at 3m, before the range; a series without a
	// version is no deploy. dup/d-1 reports versions 1 and 2 together
	// from 6m to 11m: one deploy, at 12m, when 1 is gone.
	st := promqltest.LoadedStorage(t, `
load 1m
	shop_build_info{job="checkout",instance="c-1",version="1.4.2"} 1x9 stale
	shop_build_info{job="checkout",instance="c-1",version="1.5.0"} _x10 1x9
	shop_build_info{job="checkout",instance="c-2",version="1.4.2"} 1x19
	pay_build_info{job="payments",instance="p-1",version="1.0.0"} 1x2
	pay_build_info{job="payments",instance="p-1",version="2.0.0"} _x3 1x16
	other_build_info{job="x",instance="x-1"} 1x19
	dup_build_info{job="dup",instance="d-1",version="1"} 1x11
	dup_build_info{job="dup",instance="d-1",version="2"} _x6 1x13
`)
	at := func(m int) time.Time { return time.Unix(0, 0).Add(time.Duration(m) * time.Minute).UTC() }
	for _, tc := range []struct {
		name       string
		start, end time.Time
		want       []configcentre.Change
	}{
		{name: "in range", start: at(5), end: at(11), want: []configcentre.Change{{
			Time: at(10), Kind: "deploy", Action: "deploy", Service: "checkout", Instance: "c-1", From: "1.4.2", To: "1.5.0", Author: "shop_build_info",
		}}},
		{name: "all", start: at(0), end: at(19), want: []configcentre.Change{
			{Time: at(3), Kind: "deploy", Action: "deploy", Service: "payments", Instance: "p-1", From: "1.0.0", To: "2.0.0", Author: "pay_build_info"},
			{Time: at(10), Kind: "deploy", Action: "deploy", Service: "checkout", Instance: "c-1", From: "1.4.2", To: "1.5.0", Author: "shop_build_info"},
			{Time: at(12), Kind: "deploy", Action: "deploy", Service: "dup", Instance: "d-1", From: "1", To: "2", Author: "dup_build_info"},
		}},
		{name: "before", start: at(13), end: at(19)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Deploys(context.Background(), st, tc.start, tc.end)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("%d: got %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestMergeKeepsTimeOrder(t *testing.T) {
	at := func(s int) time.Time { return time.Unix(int64(s), 0) }
	got := Merge(
		[]configcentre.Change{{Time: at(1), Kind: "config", Version: 1}, {Time: at(3), Kind: "config", Version: 2}},
		[]configcentre.Change{{Time: at(2), Kind: "deploy"}, {Time: at(3), Kind: "deploy"}})
	var kinds []string
	for _, c := range got {
		kinds = append(kinds, c.Kind)
	}
	if want := "config deploy config deploy"; strings.Join(kinds, " ") != want {
		t.Errorf("got %s, want %s", strings.Join(kinds, " "), want)
	}
}
