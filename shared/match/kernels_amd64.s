#include "textflag.h"

// func indexFold3AVX2(b []byte, d1, d2 int, c, m uint32) int
//
// The least j with b[j]|m0 == c0, b[j+d1]|m1 == c1 and b[j+d2]|m2 == c2
// (cK, mK: byte K of c and m), looking at 32 positions per step while
// j+d2+32 <= len(b); if none, ^j for the first position not looked at.
TEXT ·indexFold3AVX2(SB), NOSPLIT, $0-56
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), BX
	MOVQ d1+24(FP), R8
	MOVQ d2+32(FP), R9
	MOVL c+40(FP), AX
	MOVL m+44(FP), DX

	MOVD AX, X0
	VPBROADCASTB X0, Y1
	SHRL $8, AX
	MOVD AX, X0
	VPBROADCASTB X0, Y2
	SHRL $8, AX
	MOVD AX, X0
	VPBROADCASTB X0, Y3
	MOVD DX, X0
	VPBROADCASTB X0, Y4
	SHRL $8, DX
	MOVD DX, X0
	VPBROADCASTB X0, Y5
	SHRL $8, DX
	MOVD DX, X0
	VPBROADCASTB X0, Y6

	XORQ DI, DI
	MOVQ BX, R10
	SUBQ R9, R10
	SUBQ $32, R10 // last j a step may start at
	JL   fold3none

fold3loop:
	LEAQ      (SI)(DI*1), R11
	VMOVDQU   (R11), Y7
	VPOR      Y4, Y7, Y7
	VPCMPEQB  Y1, Y7, Y7
	VMOVDQU   (R11)(R8*1), Y8
	VPOR      Y5, Y8, Y8
	VPCMPEQB  Y2, Y8, Y8
	VMOVDQU   (R11)(R9*1), Y9
	VPOR      Y6, Y9, Y9
	VPCMPEQB  Y3, Y9, Y9
	VPAND     Y7, Y8, Y8
	VPAND     Y8, Y9, Y9
	VPMOVMSKB Y9, CX
	TESTL     CX, CX
	JNZ       fold3found
	ADDQ      $32, DI
	CMPQ      DI, R10
	JLE       fold3loop

fold3none:
	VZEROUPPER
	NOTQ DI
	MOVQ DI, ret+48(FP)
	RET

fold3found:
	VZEROUPPER
	TZCNTL CX, CX
	ADDQ   CX, DI
	MOVQ   DI, ret+48(FP)
	RET

// func indexLineEventAVX2(b []byte) int
//
// The least j >= 2 at which b[j] is '\\', '&' or '%', or a '\n' that may
// end a blank line (see isLineEvent), looking at 32 positions per step
// while j+32 <= len(b); if none, ^j for the first position not looked at.
TEXT ·indexLineEventAVX2(SB), NOSPLIT, $0-32
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), BX

	MOVL $0x5c, AX // '\\'
	MOVD AX, X0
	VPBROADCASTB X0, Y1
	MOVL $0x26, AX // '&'
	MOVD AX, X0
	VPBROADCASTB X0, Y2
	MOVL $0x25, AX // '%'
	MOVD AX, X0
	VPBROADCASTB X0, Y3
	MOVL $0x0a, AX // '\n'
	MOVD AX, X0
	VPBROADCASTB X0, Y4
	MOVL $0x0d, AX // '\r'
	MOVD AX, X0
	VPBROADCASTB X0, Y5
	MOVL $0x20, AX
	MOVD AX, X0
	VPBROADCASTB X0, Y6
	MOVL $0x7f, AX
	MOVD AX, X0
	VPBROADCASTB X0, Y7

	MOVQ $2, DI
	MOVQ BX, R10
	SUBQ $32, R10 // last j a step may start at
	CMPQ DI, R10
	JG   eventnone

eventloop:
	LEAQ     (SI)(DI*1), R11
	VMOVDQU  (R11), Y8       // b[j]
	VMOVDQU  -1(R11), Y9     // b[j-1]
	VMOVDQU  -2(R11), Y10    // b[j-2]
	VPCMPEQB Y1, Y8, Y11
	VPCMPEQB Y2, Y8, Y12
	VPOR     Y12, Y11, Y11
	VPCMPEQB Y3, Y8, Y12
	VPOR     Y12, Y11, Y11   // mark bytes
	VPCMPEQB Y4, Y8, Y8      // '\n'
	// safe(x): 0x20 < x < 0x7f, signed, so bytes >= 0x80 are not safe.
	VPCMPGTB Y6, Y9, Y12     // b[j-1] > 0x20
	VPCMPGTB Y9, Y7, Y13     // 0x7f > b[j-1]
	VPAND    Y13, Y12, Y12   // safe(b[j-1])
	VPCMPGTB Y6, Y10, Y13    // b[j-2] > 0x20
	VPCMPGTB Y10, Y7, Y14    // 0x7f > b[j-2]
	VPAND    Y14, Y13, Y13   // safe(b[j-2])
	VPCMPEQB Y5, Y9, Y14     // b[j-1] == '\r'
	VPAND    Y14, Y13, Y13
	VPOR     Y13, Y12, Y12   // the line surely holds a non-blank byte
	VPANDN   Y8, Y12, Y12    // '\n' &^ sure
	VPOR     Y12, Y11, Y11
	VPMOVMSKB Y11, CX
	TESTL    CX, CX
	JNZ      eventfound
	ADDQ     $32, DI
	CMPQ     DI, R10
	JLE      eventloop

eventnone:
	VZEROUPPER
	NOTQ DI
	MOVQ DI, ret+24(FP)
	RET

eventfound:
	VZEROUPPER
	TZCNTL CX, CX
	ADDQ   CX, DI
	MOVQ   DI, ret+24(FP)
	RET
