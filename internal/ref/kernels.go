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

// dotPortable is the reference implementation of the layout: a (n) . b (n).
func dotPortable(a, b []float32) float32 {
	b = b[:len(a)]
	var acc [lanes]float32
	n := len(a) &^ (lanes - 1)
	for i := 0; i < n; i += lanes {
		x, y := (*[lanes]float32)(a[i:i+lanes]), (*[lanes]float32)(b[i:i+lanes])
		acc[0] += float32(x[0] * y[0])
		acc[1] += float32(x[1] * y[1])
		acc[2] += float32(x[2] * y[2])
		acc[3] += float32(x[3] * y[3])
		acc[4] += float32(x[4] * y[4])
		acc[5] += float32(x[5] * y[5])
		acc[6] += float32(x[6] * y[6])
		acc[7] += float32(x[7] * y[7])
		acc[8] += float32(x[8] * y[8])
		acc[9] += float32(x[9] * y[9])
		acc[10] += float32(x[10] * y[10])
		acc[11] += float32(x[11] * y[11])
		acc[12] += float32(x[12] * y[12])
		acc[13] += float32(x[13] * y[13])
		acc[14] += float32(x[14] * y[14])
		acc[15] += float32(x[15] * y[15])
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

// axpy adds a*x to y element by element: y (n) += a * x (n).
func axpy(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += float32(a * x[i])
	}
}
