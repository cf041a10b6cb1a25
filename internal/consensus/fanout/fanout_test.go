package fanout

import (
	"testing"

	"github.com/vigil-observability/vigil/internal/consensus"
)

func TestLatestCoalescesAndSkipsStale(t *testing.T) {
	l := NewLatest(consensus.LeaderInfo{}, StaleLeader)
	ch, cancel := l.Watch()
	defer cancel()
	if got := <-ch; got != (consensus.LeaderInfo{}) {
		t.Fatalf("first value %+v, want the initial one", got)
	}
	l.Set(consensus.LeaderInfo{ID: "a", Term: 2})
	l.Set(consensus.LeaderInfo{ID: "b", Term: 3})
	l.Set(consensus.LeaderInfo{ID: "a", Term: 2}) // stale: older term
	if got := <-ch; got.ID != "b" || got.Term != 3 {
		t.Fatalf("got %+v, want only the latest, b in term 3", got)
	}
	l.Set(consensus.LeaderInfo{Term: 1}) // no leader: never stale
	if got := <-ch; got != (consensus.LeaderInfo{Term: 1}) {
		t.Fatalf("got %+v, want the leaderless value", got)
	}
	if got := l.Get(); got != (consensus.LeaderInfo{Term: 1}) {
		t.Fatalf("Get %+v", got)
	}
	l.Close()
	if _, open := <-ch; open {
		t.Fatal("channel open after Close")
	}
	cancel() // after Close: no double close
	if ch2, _ := l.Watch(); isOpen(ch2) {
		t.Fatal("Watch after Close returned an open channel")
	}
}

func TestSubscribersDropsTheSlowOne(t *testing.T) {
	s := NewSubscribers[int]()
	slow, cancelSlow := s.Subscribe(1)
	fast, cancelFast := s.Subscribe(4)
	s.Publish(1)
	s.Publish(2) // slow is full: dropped
	if v := <-slow; v != 1 {
		t.Fatalf("slow got %d, want 1", v)
	}
	if _, open := <-slow; open {
		t.Fatal("slow subscriber not dropped")
	}
	cancelSlow() // after the drop: no double close
	if a, b := <-fast, <-fast; a != 1 || b != 2 {
		t.Fatalf("fast got %d, %d", a, b)
	}
	cancelFast()
	if _, open := <-fast; open {
		t.Fatal("channel open after cancel")
	}
	s.Close()
	if ch, _ := s.Subscribe(1); isOpen(ch) {
		t.Fatal("Subscribe after Close returned an open channel")
	}
	s.Publish(3) // nobody left
}

func isOpen[T any](ch <-chan T) bool {
	select {
	case _, open := <-ch:
		return open
	default:
		return true
	}
}
