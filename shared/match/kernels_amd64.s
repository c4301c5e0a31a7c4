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

// lineEventTable maps the low nibble of a byte below 0x80 to the one mark
// byte or '\n' with that nibble ('%' 5, '&' 6, '\n' A, '\\' C), and every
// other nibble to a byte with another low nibble, so that VPSHUFB and one
// comparison find those four bytes; both 128-bit lanes hold the table.
DATA lineEventTable<>+0x00(SB)/8, $0x0026250000000001
DATA lineEventTable<>+0x08(SB)/8, $0x0000005c000a0000
DATA lineEventTable<>+0x10(SB)/8, $0x0026250000000001
DATA lineEventTable<>+0x18(SB)/8, $0x0000005c000a0000
GLOBL lineEventTable<>(SB), RODATA|NOPTR, $32

// func indexLineEventAVX2(b []byte) int
//
// The least j >= 2 at which b[j] is '\\', '&' or '%', or a '\n' that may
// end a blank line (see isLineEvent), looking at 32 positions per step
// while j+32 <= len(b); if none, ^j for the first position not looked at.
TEXT ·indexLineEventAVX2(SB), NOSPLIT, $0-32
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), BX

	VMOVDQU lineEventTable<>(SB), Y1
	MOVL $0x0a, AX // '\n'
	MOVD AX, X0
	VPBROADCASTB X0, Y4
	MOVL $0x0d, AX // '\r'
	MOVD AX, X0
	VPBROADCASTB X0, Y5
	MOVL $0x5f, AX // 0x80-0x21: moves 0x21..0x7e to 0x80..0xdd
	MOVD AX, X0
	VPBROADCASTB X0, Y6
	MOVL $0xde, AX // -34: below it (signed) are exactly 0x80..0xdd
	MOVD AX, X0
	VPBROADCASTB X0, Y7

	MOVQ $2, DI
	MOVQ BX, R10
	SUBQ $32, R10 // last j a step may start at
	CMPQ DI, R10
	JG   eventnone

eventloop:
	LEAQ      (SI)(DI*1), R11
	VMOVDQU   (R11), Y8           // b[j]
	VMOVDQU   -1(R11), Y9         // b[j-1]
	VMOVDQU   -2(R11), Y10        // b[j-2]
	VPSHUFB   Y8, Y1, Y11
	VPCMPEQB  Y8, Y11, Y11        // mark bytes and '\n'
	VPCMPEQB  Y4, Y8, Y8          // '\n'
	// The line surely holds a non-blank byte when the byte before the
	// '\n' (before the "\r\n") is printable ASCII other than space.
	VPCMPEQB  Y5, Y9, Y12         // b[j-1] == '\r'
	VPBLENDVB Y12, Y10, Y9, Y13   // b[j-2] there, else b[j-1]
	VPADDB    Y6, Y13, Y13
	VPCMPGTB  Y13, Y7, Y13        // printable, not space
	VPAND     Y8, Y13, Y13        // '\n' of a surely non-blank line
	VPANDN    Y11, Y13, Y11
	VPMOVMSKB Y11, CX
	TESTL     CX, CX
	JNZ       eventfound
	ADDQ      $32, DI
	CMPQ      DI, R10
	JLE       eventloop

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

// func scanLinesAVX2(b []byte, from, d1, d2 int, c, m uint32) (j, lines int)
//
// indexLineEventAVX2 and indexFold3AVX2 in one pass, counting line ends on
// the way: the least j >= from (from >= 2) at which b[j] is a line event
// or the fingerprint (c, m, d1, d2) starts, and the number of '\n' in
// b[from:j], looking at 32 positions per step while j+d2+32 <= len(b); if
// none, ^j for the first position not looked at, and the '\n' before it.
TEXT ·scanLinesAVX2(SB), NOSPLIT, $0-72
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), BX
	MOVQ from+24(FP), DI
	MOVQ d1+32(FP), R8
	MOVQ d2+40(FP), R9
	MOVL c+48(FP), AX
	MOVL m+52(FP), DX

	// Y0, Y2, Y3: the fingerprint's bytes; Y8, Y9, Y10: their masks.
	MOVD AX, X11
	VPBROADCASTB X11, Y0
	SHRL $8, AX
	MOVD AX, X11
	VPBROADCASTB X11, Y2
	SHRL $8, AX
	MOVD AX, X11
	VPBROADCASTB X11, Y3
	MOVD DX, X11
	VPBROADCASTB X11, Y8
	SHRL $8, DX
	MOVD DX, X11
	VPBROADCASTB X11, Y9
	SHRL $8, DX
	MOVD DX, X11
	VPBROADCASTB X11, Y10
	// Y1, Y4..Y7: as in indexLineEventAVX2.
	VMOVDQU lineEventTable<>(SB), Y1
	MOVL $0x0a, AX
	MOVD AX, X11
	VPBROADCASTB X11, Y4
	MOVL $0x0d, AX
	MOVD AX, X11
	VPBROADCASTB X11, Y5
	MOVL $0x5f, AX
	MOVD AX, X11
	VPBROADCASTB X11, Y6
	MOVL $0xde, AX
	MOVD AX, X11
	VPBROADCASTB X11, Y7

	XORQ R12, R12 // lines
	MOVQ BX, R10
	SUBQ R9, R10
	SUBQ $32, R10 // last j a step may start at
	CMPQ DI, R10
	JG   scannone

scanloop:
	LEAQ      (SI)(DI*1), R11
	VMOVDQU   (R11), Y11          // b[j]
	VPOR      Y8, Y11, Y12
	VPCMPEQB  Y0, Y12, Y12
	VPOR      (R11)(R8*1), Y9, Y13
	VPCMPEQB  Y2, Y13, Y13
	VPAND     Y13, Y12, Y12
	VPOR      (R11)(R9*1), Y10, Y13
	VPCMPEQB  Y3, Y13, Y13
	VPAND     Y13, Y12, Y12       // fingerprint starts
	VPSHUFB   Y11, Y1, Y13
	VPCMPEQB  Y11, Y13, Y13       // mark bytes and '\n'
	VPCMPEQB  Y4, Y11, Y11        // '\n'
	VMOVDQU   -1(R11), Y14        // b[j-1]
	VPCMPEQB  Y5, Y14, Y15        // b[j-1] == '\r'
	VPBLENDVB Y15, -2(R11), Y14, Y14
	VPADDB    Y6, Y14, Y14
	VPCMPGTB  Y14, Y7, Y14        // printable, not space
	VPAND     Y11, Y14, Y14       // '\n' of a surely non-blank line
	VPANDN    Y13, Y14, Y13       // line events
	VPOR      Y12, Y13, Y13
	VPMOVMSKB Y13, CX
	VPMOVMSKB Y11, DX
	TESTL     CX, CX
	JNZ       scanfound
	POPCNTL   DX, DX
	ADDQ      DX, R12
	ADDQ      $32, DI
	CMPQ      DI, R10
	JLE       scanloop

scannone:
	VZEROUPPER
	NOTQ DI
	MOVQ DI, j+56(FP)
	MOVQ R12, lines+64(FP)
	RET

scanfound:
	VZEROUPPER
	TZCNTL  CX, CX
	MOVL    $1, AX
	SHLL    CX, AX
	DECL    AX
	ANDL    AX, DX                // the '\n' before the one found
	POPCNTL DX, DX
	ADDQ    DX, R12
	ADDQ    CX, DI
	MOVQ    DI, j+56(FP)
	MOVQ    R12, lines+64(FP)
	RET
