package golden

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSortCausal: SortCausal gives the order of a stable sort by CausalCompare, for records
// in order, reversed and shuffled, unknown stage names and duplicate keys included.
func TestSortCausal(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	names := []string{"embed_out", "attn_in", "q_post_rope", "mlp_out", "logits", "zz_custom", "aa_custom"}
	var recs []Record
	for i := range 400 {
		recs = append(recs, Record{PromptID: "p", PosID: rng.IntN(6), Layer: rng.IntN(4) - 1,
			TensorName: names[rng.IntN(len(names))], NZCount: i})
	}
	byCompare := func(in []Record) []Record {
		out := slices.Clone(in)
		slices.SortStableFunc(out, func(a, b Record) int { return CausalCompare(KeyOf(a), KeyOf(b)) })
		return out
	}
	want := byCompare(recs)
	// Late arrivals: 20 records taken out of the sorted order and appended at the end.
	var late, rest []Record
	for i, r := range want {
		if i%20 == 7 {
			late = append(late, r)
		} else {
			rest = append(rest, r)
		}
	}
	cases := map[string][]Record{"shuffled": recs, "sorted": want, "reversed": reversed(want),
		"late arrivals": append(rest, late...)}
	for name, in := range cases {
		got := slices.Clone(in)
		SortCausal(got)
		// NZCount tells records with equal keys apart: stability is part of the contract.
		if diff := cmp.Diff(byCompare(in), got); diff != "" {
			t.Errorf("%s: SortCausal differs from a stable sort by CausalCompare (-want +got):\n%s", name, diff)
		}
	}
}

func reversed(recs []Record) []Record {
	out := slices.Clone(recs)
	slices.Reverse(out)
	return out
}

func BenchmarkSortCausal(b *testing.B) {
	var recs []Record
	for layer := range 22 {
		for st := range NumStages {
			for pos := range 50 {
				recs = append(recs, Record{PromptID: "p", PosID: pos, Layer: layer, TensorName: Stage(st).String()})
			}
		}
	}
	SortCausal(recs)
	shuffled := slices.Clone(recs)
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	// The last 51 records shuffled among themselves: the logits rows a device backend hands
	// over from several goroutines.
	tail := slices.Clone(recs)
	t := tail[len(tail)-51:]
	rand.New(rand.NewPCG(2, 2)).Shuffle(len(t), func(i, j int) { t[i], t[j] = t[j], t[i] })
	for name, in := range map[string][]Record{"sorted": recs, "shuffled": shuffled, "tail": tail} {
		b.Run(name, func(b *testing.B) {
			work := make([]Record, len(in))
			for b.Loop() {
				b.StopTimer()
				copy(work, in)
				b.StartTimer()
				SortCausal(work)
			}
		})
	}
}
