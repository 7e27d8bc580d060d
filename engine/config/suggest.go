package config

import (
	"fmt"
	"sort"

	"github.com/agext/levenshtein"
)

// suggest returns the candidate closest to given when it is close enough to be a likely typo.
func suggest(given string, candidates []string) string {
	best, bestDist := "", 3
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	for _, c := range sorted {
		d := levenshtein.Distance(given, c, nil)
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// didYouMean returns ` Did you mean "x"?` or "".
func didYouMean(given string, candidates []string) string {
	if s := suggest(given, candidates); s != "" {
		return fmt.Sprintf(" Did you mean %q?", s)
	}
	return ""
}
