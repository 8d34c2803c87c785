package ref

// The dot-product layout every kernel shares, SIMD or not: element i of a row is accumulated
// into lane i%16 of 16 partial sums, in increasing i, each product rounded to float32 before
// its add (no fused multiply-add anywhere); then reduce16 folds the lanes in a fixed tree.
// Every output element is therefore a fixed function of its two input rows, whichever kernel,
// tile shape, thread split or machine computes it: that is what makes prefill equal decode,
// SIMD equal portable, and amd64 equal arm64.

const lanes = 16

// reduce16 folds the partial sums: lane j with lane j+8, then j+4, j+2, j+1.
func reduce16(a *[lanes]float32) float32 {
	b0, b1, b2, b3 := a[0]+a[8], a[1]+a[9], a[2]+a[10], a[3]+a[11]
	b4, b5, b6, b7 := a[4]+a[12], a[5]+a[13], a[6]+a[14], a[7]+a[15]
	c0, c1, c2, c3 := b0+b4, b1+b5, b2+b6, b3+b7
	return (c0 + c2) + (c1 + c3)
}

// dotPortable is the reference implementation of the layout: a (n) . b (n). It makes two
// passes, lanes 0-7 then lanes 8-15, so that the eight running sums of each pass stay in
// registers; each lane's sum is the same sequence of operations either way.
func dotPortable(a, b []float32) float32 {
	b = b[:len(a)]
	n := len(a) &^ (lanes - 1)
	var acc [lanes]float32
	for half := 0; half < lanes; half += 8 {
		var s0, s1, s2, s3, s4, s5, s6, s7 float32
		for i := half; i < n; i += lanes {
			x, y := (*[8]float32)(a[i:i+8]), (*[8]float32)(b[i:i+8])
			s0 += float32(x[0] * y[0])
			s1 += float32(x[1] * y[1])
			s2 += float32(x[2] * y[2])
			s3 += float32(x[3] * y[3])
			s4 += float32(x[4] * y[4])
			s5 += float32(x[5] * y[5])
			s6 += float32(x[6] * y[6])
			s7 += float32(x[7] * y[7])
		}
		acc[half], acc[half+1], acc[half+2], acc[half+3] = s0, s1, s2, s3
		acc[half+4], acc[half+5], acc[half+6], acc[half+7] = s4, s5, s6, s7
	}
	addTail(&acc, a, b, n)
	return reduce16(&acc)
}

// addTail accumulates the elements from n on (fewer than 16) into their lanes.
func addTail(acc *[lanes]float32, a, b []float32, n int) {
	for i := n; i < len(a); i++ {
		acc[i%lanes] += float32(a[i] * b[i])
	}
}

// matmulPortable computes y[t*ys+r] = W.Row(r) . x[t] for rows r0 <= r < r1 and tokens
// 0 <= t < nt, with W (rows, cols) and x (nt, cols) row-major.
func matmulPortable(w []float32, cols int, x []float32, nt int, y []float32, ys, r0, r1 int) {
	for r := r0; r < r1; r++ {
		wr := w[r*cols : (r+1)*cols]
		for t := 0; t < nt; t++ {
			y[t*ys+r] = dotPortable(wr, x[t*cols:(t+1)*cols])
		}
	}
}

// axpyPortable adds a*x to y element by element: y (n) += a * x (n), the product rounded
// before the add.
func axpyPortable(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += float32(a * x[i])
	}
}
