package broker

// HeartbeatGroups is the number of groups the Hub's subscribers fall into
// for heartbeats; a heartbeat clock that visits them in HeartbeatGroups
// parts spreads the node's heartbeats most evenly (see Hub.Heartbeat).
const HeartbeatGroups = 64

// beatGroups spreads subscribers over HeartbeatGroups groups, so that a
// heartbeat tick visits a group at a time instead of every subscriber:
// spread by subscriber, not by stream, so that one stream's many idle
// subscribers are spread too. A new subscriber joins the smallest group
// (round robin would let a pattern of subscribers coming and going pile
// the lasting ones into a few groups) and stays in it from Register to
// unregister, which keeps its visits one round of the clock apart.
type beatGroups struct {
	groups [HeartbeatGroups][]*Subscriber
}

func (b *beatGroups) add(s *Subscriber) {
	smallest := 0
	for i := range b.groups {
		if len(b.groups[i]) < len(b.groups[smallest]) {
			smallest = i
		}
	}
	g := &b.groups[smallest]
	s.group, s.groupIndex = smallest, len(*g)
	*g = append(*g, s)
}

// remove swap-removes s from its group, if it is in one.
func (b *beatGroups) remove(s *Subscriber) {
	if s.groupIndex < 0 {
		return
	}
	g := &b.groups[s.group]
	last := len(*g) - 1
	moved := (*g)[last]
	(*g)[s.groupIndex] = moved
	moved.groupIndex = s.groupIndex
	(*g)[last] = nil
	*g = (*g)[:last]
	s.groupIndex = -1
}

// heartbeatParts is parts as Hub.Heartbeat uses it: a power of two from 1
// to HeartbeatGroups, rounded down, so that every part holds as many
// groups.
func heartbeatParts(parts int) int {
	p := 1
	for p*2 <= min(parts, HeartbeatGroups) {
		p *= 2
	}
	return p
}
