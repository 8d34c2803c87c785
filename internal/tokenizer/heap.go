package tokenizer

// ranked is an element of a binary heap: before reports whether it comes out first.
type ranked[T any] interface {
	before(T) bool
}

// heapPush adds x to the heap q.
func heapPush[T ranked[T]](q []T, x T) []T {
	q = append(q, x)
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q[i].before(q[p]) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
	return q
}

// heapPop removes the first element of the non-empty heap q.
func heapPop[T ranked[T]](q []T) (T, []T) {
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q = q[:last]
	for i := 0; ; {
		c := 2*i + 1
		if c >= len(q) {
			break
		}
		if c+1 < len(q) && q[c+1].before(q[c]) {
			c++
		}
		if !q[c].before(q[i]) {
			break
		}
		q[i], q[c] = q[c], q[i]
		i = c
	}
	return top, q
}
