// Package stats holds the statistical tests used to compare endpoint
// versions: a two-proportion z-test for error rates and a Mann-Whitney U
// test on binned latencies (histograms with shared bucket bounds).
package stats

import (
	"math"
	"sort"
)

// NormalSF2 returns the two-sided p-value of a standard normal z.
func NormalSF2(z float64) float64 {
	return math.Erfc(math.Abs(z) / math.Sqrt2)
}

// TwoProportionZ tests whether x1/n1 and x2/n2 differ, with the pooled
// standard error. It returns z (positive when the first proportion is
// larger) and the two-sided p-value; p is 1 when the test is undefined.
func TwoProportionZ(x1, n1, x2, n2 uint64) (z, p float64) {
	if n1 == 0 || n2 == 0 {
		return 0, 1
	}
	p1 := float64(x1) / float64(n1)
	p2 := float64(x2) / float64(n2)
	pool := float64(x1+x2) / float64(n1+n2)
	se := math.Sqrt(pool * (1 - pool) * (1/float64(n1) + 1/float64(n2)))
	if se == 0 {
		return 0, 1
	}
	z = (p1 - p2) / se
	return z, NormalSF2(z)
}

// Bin is one histogram bucket: observations with values up to Upper (a
// larger Upper is a larger value; use +Inf for the overflow bucket).
type Bin struct {
	Upper float64
	Count uint64
}

// MannWhitneyBinned runs the Mann-Whitney U test on two histograms whose
// buckets share bounds; observations in one bucket are ties (mid-ranks),
// with the tie correction of the variance. It returns z (positive when the
// first sample tends to be larger) and the two-sided p-value.
func MannWhitneyBinned(a, b []Bin) (z, p float64) {
	type cell struct{ na, nb uint64 }
	cells := map[float64]*cell{}
	for _, x := range a {
		c := cells[x.Upper]
		if c == nil {
			c = &cell{}
			cells[x.Upper] = c
		}
		c.na += x.Count
	}
	for _, x := range b {
		c := cells[x.Upper]
		if c == nil {
			c = &cell{}
			cells[x.Upper] = c
		}
		c.nb += x.Count
	}
	bounds := make([]float64, 0, len(cells))
	for k := range cells {
		bounds = append(bounds, k)
	}
	sort.Float64s(bounds)
	var n1, n2 float64
	for _, k := range bounds {
		n1 += float64(cells[k].na)
		n2 += float64(cells[k].nb)
	}
	if n1 == 0 || n2 == 0 {
		return 0, 1
	}
	n := n1 + n2
	var rankSumA, tieTerm, below float64
	for _, k := range bounds {
		c := cells[k]
		t := float64(c.na + c.nb)
		if t == 0 {
			continue
		}
		mid := below + (t+1)/2
		rankSumA += mid * float64(c.na)
		tieTerm += t*t*t - t
		below += t
	}
	u := rankSumA - n1*(n1+1)/2
	mean := n1 * n2 / 2
	variance := n1 * n2 / 12 * ((n + 1) - tieTerm/(n*(n-1)))
	if variance <= 0 {
		return 0, 1
	}
	z = (u - mean) / math.Sqrt(variance)
	return z, NormalSF2(z)
}
