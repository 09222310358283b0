package auth

import "strings"

// Match reports whether stream matches pattern, where each `*` matches any
// run of characters (the empty one included) and every other character
// matches itself.
//
// It runs without backtracking: the literal parts between the stars are
// found left to right, each at its leftmost place after the previous one,
// which is optimal because a star before a part can absorb anything. The
// first part must be a prefix and the last a suffix. The cost is one
// substring search per part, so a pattern like "a*a*a*a*b" against a long
// run of "a" stays linear in practice, never exponential.
func Match(pattern, stream string) bool {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return pattern == stream
	}
	// Prefix before the first star.
	if !strings.HasPrefix(stream, pattern[:star]) {
		return false
	}
	s := stream[star:]
	p := pattern[star+1:]
	// Suffix after the last star.
	last := strings.LastIndexByte(p, '*')
	suffix := p[last+1:] // p itself when there is no other star
	if len(suffix) > len(s) || !strings.HasSuffix(s, suffix) {
		return false
	}
	s = s[:len(s)-len(suffix)]
	if last < 0 {
		return true
	}
	// The middle parts, each found leftmost in what the others left.
	for _, part := range strings.Split(p[:last], "*") {
		if part == "" {
			continue
		}
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return true
}
