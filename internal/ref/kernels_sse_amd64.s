//go:build amd64 && !goexperiment.simd && !purego

#include "textflag.h"

// SSE kernels (baseline amd64) for builds without the SIMD experiment. The 16 lanes of
// the layout are four 4-wide registers; MULPS then ADDPS round exactly like the scalar
// float32(a*b) then +, so the results are the portable code's bits.

// func dotSSE(a, b []float32, acc *[16]float32)
// acc[j] = sum over blocks of 16 of a[i+j]*b[i+j], for the len(a)&^15 first elements;
// acc starts at +0.
TEXT ·dotSSE(SB), NOSPLIT, $0-56
	MOVQ a_base+0(FP), SI
	MOVQ a_len+8(FP), CX
	MOVQ b_base+24(FP), DI
	MOVQ acc+48(FP), DX
	SHRQ $4, CX
	XORPS X0, X0
	XORPS X1, X1
	XORPS X2, X2
	XORPS X3, X3
	TESTQ CX, CX
	JZ dotdone
dotloop:
	MOVUPS 0(SI), X4
	MOVUPS 0(DI), X8
	MULPS X8, X4
	ADDPS X4, X0
	MOVUPS 16(SI), X5
	MOVUPS 16(DI), X9
	MULPS X9, X5
	ADDPS X5, X1
	MOVUPS 32(SI), X6
	MOVUPS 32(DI), X10
	MULPS X10, X6
	ADDPS X6, X2
	MOVUPS 48(SI), X7
	MOVUPS 48(DI), X11
	MULPS X11, X7
	ADDPS X7, X3
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ dotloop
dotdone:
	MOVUPS X0, 0(DX)
	MOVUPS X1, 16(DX)
	MOVUPS X2, 32(DX)
	MOVUPS X3, 48(DX)
	RET

// func dot2SSE(w, x0, x1 []float32, acc0, acc1 *[16]float32)
// dotSSE of w with x0 and with x1 at once, each weight loaded once for both.
TEXT ·dot2SSE(SB), NOSPLIT, $0-88
	MOVQ w_base+0(FP), SI
	MOVQ w_len+8(FP), CX
	MOVQ x0_base+24(FP), DI
	MOVQ x1_base+48(FP), R8
	MOVQ acc0+72(FP), DX
	MOVQ acc1+80(FP), R9
	SHRQ $4, CX
	XORPS X0, X0
	XORPS X1, X1
	XORPS X2, X2
	XORPS X3, X3
	XORPS X4, X4
	XORPS X5, X5
	XORPS X6, X6
	XORPS X7, X7
	TESTQ CX, CX
	JZ dot2done
dot2loop:
	MOVUPS 0(SI), X8
	MOVUPS 0(DI), X12
	MULPS X8, X12
	ADDPS X12, X0
	MOVUPS 0(R8), X13
	MULPS X8, X13
	ADDPS X13, X4
	MOVUPS 16(SI), X9
	MOVUPS 16(DI), X12
	MULPS X9, X12
	ADDPS X12, X1
	MOVUPS 16(R8), X13
	MULPS X9, X13
	ADDPS X13, X5
	MOVUPS 32(SI), X10
	MOVUPS 32(DI), X12
	MULPS X10, X12
	ADDPS X12, X2
	MOVUPS 32(R8), X13
	MULPS X10, X13
	ADDPS X13, X6
	MOVUPS 48(SI), X11
	MOVUPS 48(DI), X12
	MULPS X11, X12
	ADDPS X12, X3
	MOVUPS 48(R8), X13
	MULPS X11, X13
	ADDPS X13, X7
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, R8
	DECQ CX
	JNZ dot2loop
dot2done:
	MOVUPS X0, 0(DX)
	MOVUPS X1, 16(DX)
	MOVUPS X2, 32(DX)
	MOVUPS X3, 48(DX)
	MOVUPS X4, 0(R9)
	MOVUPS X5, 16(R9)
	MOVUPS X6, 32(R9)
	MOVUPS X7, 48(R9)
	RET

// func axpySSE(y, x []float32, a float32)
// y[i] += a*x[i] for the len(y)&^3 first elements.
TEXT ·axpySSE(SB), NOSPLIT, $0-52
	MOVQ y_base+0(FP), DI
	MOVQ y_len+8(FP), CX
	MOVQ x_base+24(FP), SI
	MOVSS a+48(FP), X0
	SHUFPS $0, X0, X0
	SHRQ $2, CX
	TESTQ CX, CX
	JZ axpydone
axpyloop:
	MOVUPS 0(SI), X1
	MULPS X0, X1
	MOVUPS 0(DI), X2
	ADDPS X1, X2
	MOVUPS X2, 0(DI)
	ADDQ $16, SI
	ADDQ $16, DI
	DECQ CX
	JNZ axpyloop
axpydone:
	RET
