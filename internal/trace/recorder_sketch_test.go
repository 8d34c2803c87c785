package trace

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/golden"
)

// TestRecorderRows hands a recorder rows of several widths, logits rows among them, from
// one buffer the caller overwrites after each call (as engines do), and checks each
// record's hash, count, sketch and top 5 against the row it was given.
func TestRecorderRows(t *testing.T) {
	const nLayer = 2
	rng := rand.New(rand.NewPCG(3, 4))
	type row struct {
		st    golden.Stage
		layer int
		pos   int
		data  []float32
	}
	var rows []row
	for pos := range 3 {
		for _, st := range []golden.Stage{golden.EmbedOut, golden.KPreRope, golden.MLPOut} {
			rows = append(rows, row{st, 1, pos, nil})
		}
	}
	const nLogits = 7
	for pos := range nLogits {
		rows = append(rows, row{golden.Logits, nLayer, pos, nil})
	}
	buf := make([]float32, 700)
	r := NewRecorder("p", nLogits, nLayer, "")
	for i := range rows {
		n := map[golden.Stage]int{golden.EmbedOut: 64, golden.KPreRope: 16, golden.MLPOut: 64, golden.Logits: 700}[rows[i].st]
		for j := range buf[:n] {
			buf[j] = float32(rng.NormFloat64())
		}
		rows[i].data = append([]float32(nil), buf[:n]...)
		r.Sink(rows[i].st, rows[i].layer, rows[i].pos, buf[:n])
	}
	recs, err := r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(rows) {
		t.Fatalf("%d records of %d rows", len(recs), len(rows))
	}
	type summary struct {
		Hash   string
		NZ     int
		Sketch *golden.Sketch
		Top5   []int
	}
	want, got := map[golden.Key]summary{}, map[golden.Key]summary{}
	for i, rec := range recs {
		got[golden.KeyOf(rec)] = summary{rec.Hash, rec.NZCount, rec.Sketch, rec.Top5Tokens}
		x := rows[i]
		w := summary{golden.HashRow(x.data), golden.NonZero(x.data), golden.NewSketch(x.data), nil}
		if x.st == golden.Logits {
			w.Top5 = Top5(x.data)
		}
		want[golden.Key{PromptID: "p", PosID: x.pos, Layer: golden.LayerOf(x.st, x.layer, nLayer), TensorName: x.st.String()}] = w
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-of the rows given +recorded):\n%s", diff)
	}
}

// TestRecorderConcurrentSinks hands rows over from several goroutines at once, as a device
// backend does through SinkSketched, each reusing its own buffer: every row is recorded once,
// with its own hash, and the records come out in causal order.
func TestRecorderConcurrentSinks(t *testing.T) {
	const nLayer, nPos, goroutines = 3, 40, 8
	sk := golden.NewSketch(make([]float32, 32))
	r := NewRecorder("p", nPos, nLayer, "")
	want := map[golden.Key]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			buf := make([]float32, 32)
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for pos := g; pos < nPos; pos += goroutines {
				for layer := range nLayer {
					for j := range buf {
						buf[j] = float32(rng.NormFloat64())
					}
					key := golden.Key{PromptID: "p", PosID: pos, Layer: layer, TensorName: golden.AttnOut.String()}
					mu.Lock()
					want[key] = golden.HashRow(buf)
					mu.Unlock()
					r.SinkSketched(golden.AttnOut, layer, pos, buf, sk)
				}
			}
		})
	}
	wg.Wait()
	recs, err := r.Close()
	if err != nil {
		t.Fatal(err)
	}
	got := map[golden.Key]string{}
	for i, rec := range recs {
		got[golden.KeyOf(rec)] = rec.Hash
		if i > 0 && golden.CausalCompare(golden.KeyOf(recs[i-1]), golden.KeyOf(rec)) > 0 {
			t.Errorf("record %d %v comes after %v", i, golden.KeyOf(rec), golden.KeyOf(recs[i-1]))
		}
	}
	if len(recs) != len(want) {
		t.Errorf("%d records of %d rows", len(recs), len(want))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hashes (-of the rows given +recorded):\n%s", diff)
	}
}

// BenchmarkRecorder hands a recorder the rows of the default plan for a 1653-token prompt
// on a model of TinyLlama's shape (22 layers, width 2048, K and V 256 wide, vocabulary
// 32000), in the order an engine computes them, as fast as it takes them: ms/prompt is the
// recorder's time to hash, count and sketch them all.
func BenchmarkRecorder(b *testing.B) {
	const nLayer, nPrompt = 22, 1653
	width := func(st golden.Stage) int {
		switch st {
		case golden.KPreRope, golden.KPostRope, golden.V:
			return 256
		case golden.Logits:
			return 32000
		}
		return 2048
	}
	sel := DefaultPlan().Resolve(nLayer, nPrompt)
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]float32, 32000)
	for i := range data {
		data[i] = float32(rng.NormFloat64())
	}
	sketches := map[int]*golden.Sketch{}
	for _, w := range []int{256, 2048, 32000} {
		sketches[w] = golden.NewSketch(data[:w])
	}
	// host: the recorder sketches every row; device: sketches come with the rows, as from
	// a GPU backend, and the recorder only hashes and counts.
	for _, device := range []bool{false, true} {
		name := map[bool]string{false: "host", true: "device"}[device]
		b.Run(name, func(b *testing.B) {
			record := func(rec *Recorder, st golden.Stage, layer int) int {
				n := 0
				for _, pos := range sel.Positions() {
					if sel.Want(st, layer, pos) {
						if row := data[:width(st)]; device {
							rec.SinkSketched(st, layer, pos, row, sketches[len(row)])
						} else {
							rec.Sink(st, layer, pos, row)
						}
						n++
					}
				}
				return n
			}
			rows := 0
			for b.Loop() {
				rec := NewRecorder("p", nPrompt, nLayer, "")
				rows = record(rec, golden.EmbedOut, -1)
				for layer := range nLayer {
					for _, s := range golden.Stages() {
						if s.PerLayer {
							rows += record(rec, s.Stage, layer)
						}
					}
				}
				rows += record(rec, golden.Logits, nLayer)
				if _, err := rec.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows), "rows")
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/prompt")
		})
	}
}
