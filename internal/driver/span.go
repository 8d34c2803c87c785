package driver

import (
	"fmt"

	"github.com/gretabisect/gretabisect/internal/model"
)

// CheckReplay returns the error a Replayer gives for arguments outside its model's shape:
// each backend calls it first, so they refuse bad calls in the same words.
func CheckReplay(c model.Config, lo, hi, pos0, nRows int) error {
	switch {
	case lo < 0 || hi < lo || hi > c.NLayer:
		return fmt.Errorf("replay of layers %d..%d: want 0 <= lo <= hi <= %d (n_layer)", lo, hi, c.NLayer)
	case nRows == 0:
		return fmt.Errorf("replay of layers %d..%d: no rows", lo, hi)
	case nRows%c.Dim != 0:
		return fmt.Errorf("replay of layers %d..%d: %d values are not whole rows of %d", lo, hi, nRows, c.Dim)
	case pos0 < 0 || pos0+nRows/c.Dim > c.CtxLen:
		return fmt.Errorf("replay of layers %d..%d: positions %d..%d outside the context length %d",
			lo, hi, pos0, pos0+nRows/c.Dim-1, c.CtxLen)
	}
	return nil
}

// Span is the work of one Forward or Replay call, for backends: positions Pos0..Pos0+N-1
// through layers Lo..Hi, from Tokens (embedded: Lo = 0) or from Rows (N, dim), the residual
// stream entering layer Lo. Hi = n_layer adds the final norm and the logits.
type Span struct {
	Tokens   []int32
	Rows     []float32
	Pos0, N  int
	Lo, Hi   int
	WantLast bool // the last position's logits are returned (Forward)
}

// Part returns positions Pos0+off..Pos0+off+n-1 of s, rows of width dim: one of a backend's
// chunks or passes. Only the part that ends s wants the last logits.
func (s Span) Part(off, n, dim int) Span {
	p := s
	p.Pos0, p.N, p.WantLast = s.Pos0+off, n, s.WantLast && off+n == s.N
	if s.Tokens != nil {
		p.Tokens = s.Tokens[off : off+n]
	} else {
		p.Rows = s.Rows[off*dim : (off+n)*dim]
	}
	return p
}
