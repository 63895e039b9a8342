// Package suggest finds the name a user probably meant, for "did you
// mean" hints in messages about unknown provider names, option keys and
// config keys.
package suggest

import "strings"

// Nearest returns the candidate closest to name by edit distance, ignoring
// case, when it is close enough to be a typo: at most two edits, or a third
// of the name's length for longer names, and fewer edits than the name has
// characters. Ties go to the candidate that sorts first. It returns "" when
// no candidate is close.
func Nearest(name string, candidates []string) string {
	name = strings.ToLower(name)
	best, bestDist := "", -1
	for _, c := range candidates {
		d := distance(name, strings.ToLower(c))
		if bestDist < 0 || d < bestDist || d == bestDist && c < best {
			best, bestDist = c, d
		}
	}
	if bestDist < 0 {
		return ""
	}
	n := len([]rune(name))
	if bestDist <= max(2, n/3) && bestDist < n {
		return best
	}
	return ""
}

// distance is the Levenshtein distance between a and b, in runes.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
