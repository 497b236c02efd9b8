package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestTwoProportionZ(t *testing.T) {
	tests := []struct {
		name           string
		x1, n1, x2, n2 uint64
		wantSig        bool
		wantSign       float64
	}{
		{"5% vs 0% over 2000", 100, 2000, 0, 2000, true, 1},
		{"same rate", 50, 1000, 50, 1000, false, 0},
		{"tiny samples", 1, 10, 0, 10, false, 1},
		{"empty", 0, 0, 0, 100, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z, p := TwoProportionZ(tt.x1, tt.n1, tt.x2, tt.n2)
			if (p < 0.05) != tt.wantSig {
				t.Fatalf("z=%g p=%g, significant=%v", z, p, p < 0.05)
			}
			if tt.wantSign != 0 && math.Signbit(z) != math.Signbit(tt.wantSign) {
				t.Fatalf("z=%g has the wrong sign", z)
			}
		})
	}
	// Known value: 30/100 vs 20/100 -> z ≈ 1.633.
	if z, _ := TwoProportionZ(30, 100, 20, 100); math.Abs(z-1.633) > 0.01 {
		t.Fatalf("z = %g, want 1.633", z)
	}
}

// bins puts samples into the gateway's bucket layout (50 µs x 1.25^k).
func bins(samples []float64) []Bin {
	counts := map[float64]uint64{}
	for _, s := range samples {
		ub := 50e-6
		for ub < s {
			ub *= 1.25
		}
		counts[ub]++
	}
	var out []Bin
	for k, v := range counts {
		out = append(out, Bin{Upper: k, Count: v})
	}
	return out
}

func sample(r *rand.Rand, n int, median float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = median * math.Exp(0.3*r.NormFloat64())
	}
	return out
}

func TestMannWhitneyDetectsShift(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	a := bins(sample(r, 2000, 0.012))
	b := bins(sample(r, 2000, 0.010))
	z, p := MannWhitneyBinned(a, b)
	if p >= 0.05 || z <= 0 {
		t.Fatalf("20%% slower treatment: z=%g p=%g", z, p)
	}
}

// TestFalsePositiveRates runs both tests many times on identical
// populations: at the 5% level about 5% of runs (not 50%) may be flagged.
func TestFalsePositiveRates(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	const runs = 1000
	latFP, errFP := 0, 0
	for range runs {
		a := bins(sample(r, 500, 0.010))
		b := bins(sample(r, 500, 0.010))
		if _, p := MannWhitneyBinned(a, b); p < 0.05 {
			latFP++
		}
		var x1, x2 uint64
		for range 500 {
			if r.Float64() < 0.05 {
				x1++
			}
			if r.Float64() < 0.05 {
				x2++
			}
		}
		if _, p := TwoProportionZ(x1, 500, x2, 500); p < 0.05 {
			errFP++
		}
	}
	for name, fp := range map[string]int{"latency": latFP, "errors": errFP} {
		rate := float64(fp) / runs
		t.Logf("%s false-positive rate %.3f", name, rate)
		if rate < 0.02 || rate > 0.09 {
			t.Errorf("%s false-positive rate %.3f, want about 0.05", name, rate)
		}
	}
}
