package broker

// HeartbeatGroups is the number of groups the Hub's streams fall into for
// heartbeats; a heartbeat clock that visits them in HeartbeatGroups parts
// spreads the node's heartbeats most evenly (see Hub.Heartbeat).
const HeartbeatGroups = 64

// beatGroups spreads streams over HeartbeatGroups groups, so that a
// heartbeat tick visits a group at a time instead of every stream. A new
// stream joins the smallest group (round robin would let a pattern of
// streams coming and going pile the lasting ones into a few groups), and
// stays in it for its life in the Hub, which keeps its visits one round
// of the clock apart.
type beatGroups struct {
	groups [HeartbeatGroups][]*hubStream
}

func (b *beatGroups) add(hs *hubStream) {
	smallest := 0
	for i := range b.groups {
		if len(b.groups[i]) < len(b.groups[smallest]) {
			smallest = i
		}
	}
	g := &b.groups[smallest]
	hs.group, hs.groupIndex = smallest, len(*g)
	*g = append(*g, hs)
}

// remove swap-removes hs from its group.
func (b *beatGroups) remove(hs *hubStream) {
	g := &b.groups[hs.group]
	last := len(*g) - 1
	moved := (*g)[last]
	(*g)[hs.groupIndex] = moved
	moved.groupIndex = hs.groupIndex
	(*g)[last] = nil
	*g = (*g)[:last]
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
