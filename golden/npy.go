package golden

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// .npy files hold raw tensors beside a trace (a record's raw_file). WriteNpy writes version
// 1.0 with dtype <f4; ReadNpy also reads versions 2.0 and 3.0 and dtypes <f2 and <f8.

var npyMagic = []byte("\x93NUMPY")

// maxNpyElements bounds what ReadNpy allocates from a header's shape: a logits row of a
// 256k vocabulary is far below it.
const maxNpyElements = 1 << 28

// WriteNpy writes data with the given shape (nil for a 1-D row) as a C-order <f4 array.
func WriteNpy(w io.Writer, shape []int, data []float32) error {
	if shape == nil {
		shape = []int{len(data)}
	}
	count := 1
	dims := make([]string, len(shape))
	for i, d := range shape {
		if d < 0 {
			return fmt.Errorf("npy: negative dimension %d in shape %v", d, shape)
		}
		count *= d
		dims[i] = strconv.Itoa(d)
	}
	if count != len(data) {
		return fmt.Errorf("npy: shape %v holds %d values, have %d", shape, count, len(data))
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", tuple)
	// Pad with spaces so the data starts on a 64-byte boundary; the header ends with '\n'.
	total := len(npyMagic) + 4 + len(header) + 1
	header += strings.Repeat(" ", (64-total%64)%64) + "\n"
	if len(header) > math.MaxUint16 {
		return fmt.Errorf("npy: header of %d bytes too long for version 1.0", len(header))
	}
	bw := bufio.NewWriter(w)
	bw.Write(npyMagic)
	bw.Write([]byte{1, 0})
	binary.Write(bw, binary.LittleEndian, uint16(len(header)))
	bw.WriteString(header)
	var b [4]byte
	for _, v := range data {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
		bw.Write(b[:])
	}
	return bw.Flush()
}

// WriteNpyFile writes an .npy file atomically.
func WriteNpyFile(path string, shape []int, data []float32) error {
	return WriteFileAtomic(path, func(w io.Writer) error { return WriteNpy(w, shape, data) })
}

// ReadNpyFile reads an .npy file; errors name the path.
func ReadNpyFile(path string) (shape []int, data []float32, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	shape, data, err = ReadNpy(bufio.NewReader(f))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return shape, data, nil
}

// ReadNpy reads a little-endian float array (<f2, <f4 or <f8) in C order and returns it as
// float32 values.
func ReadNpy(r io.Reader) (shape []int, data []float32, err error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, nil, fmt.Errorf("npy: reading magic: %w", err)
	}
	if !bytes.Equal(pre[:6], npyMagic) {
		return nil, nil, errors.New("npy: bad magic (not an .npy file)")
	}
	var hlen int
	switch pre[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, nil, fmt.Errorf("npy: reading header length: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, nil, fmt.Errorf("npy: reading header length: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]))
		if hlen > 1<<20 {
			return nil, nil, fmt.Errorf("npy: header length %d too large", hlen)
		}
	default:
		return nil, nil, fmt.Errorf("npy: unsupported version %d.%d", pre[6], pre[7])
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(r, hb); err != nil {
		return nil, nil, fmt.Errorf("npy: reading %d-byte header: %w", hlen, err)
	}
	h, err := parseNpyHeader(string(hb))
	if err != nil {
		return nil, nil, fmt.Errorf("npy: header %q: %w", strings.TrimSpace(string(hb)), err)
	}
	count := 1
	for _, d := range h.shape {
		if d < 0 || (d > 0 && count > maxNpyElements/d) {
			return nil, nil, fmt.Errorf("npy: shape %v too large (limit %d elements)", h.shape, maxNpyElements)
		}
		count *= d
	}
	// Read before allocating for the whole shape: a short file with a large header must not
	// cost gigabytes.
	need := count * h.size
	raw, err := io.ReadAll(io.LimitReader(r, int64(need)))
	if err != nil {
		return nil, nil, fmt.Errorf("npy: reading data: %w", err)
	}
	if len(raw) < need {
		return nil, nil, fmt.Errorf("npy: shape %v needs %d data bytes, file has %d", h.shape, need, len(raw))
	}
	data = make([]float32, count)
	for i := range data {
		switch h.size {
		case 2:
			data[i] = halfToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		case 4:
			data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		case 8:
			data[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	}
	return h.shape, data, nil
}

type npyHeader struct {
	size  int // bytes per element
	shape []int
}

// parseNpyHeader reads the Python dict literal of an .npy header, for example
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
func parseNpyHeader(s string) (npyHeader, error) {
	var h npyHeader
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return h, errors.New("not a dict")
	}
	s = s[1 : len(s)-1]
	seen := map[string]bool{}
	for {
		s = strings.TrimLeft(s, " ,")
		if s == "" {
			break
		}
		key, rest, err := npyString(s)
		if err != nil {
			return h, err
		}
		rest = strings.TrimSpace(rest)
		if !strings.HasPrefix(rest, ":") {
			return h, fmt.Errorf("no ':' after key %q", key)
		}
		rest = strings.TrimSpace(rest[1:])
		seen[key] = true
		switch key {
		case "descr":
			var d string
			d, s, err = npyString(rest)
			if err != nil {
				return h, err
			}
			switch d {
			case "<f2":
				h.size = 2
			case "<f4":
				h.size = 4
			case "<f8":
				h.size = 8
			default:
				return h, fmt.Errorf("dtype %q, want <f2, <f4 or <f8", d)
			}
		case "fortran_order":
			switch {
			case strings.HasPrefix(rest, "False"):
				s = rest[len("False"):]
			case strings.HasPrefix(rest, "True"):
				return h, errors.New("fortran_order True is not supported")
			default:
				return h, errors.New("fortran_order is not False or True")
			}
		case "shape":
			end := strings.IndexByte(rest, ')')
			if !strings.HasPrefix(rest, "(") || end < 0 {
				return h, errors.New("shape is not a tuple")
			}
			h.shape = []int{}
			for _, f := range strings.Split(rest[1:end], ",") {
				f = strings.TrimSpace(f)
				if f == "" {
					continue
				}
				d, err := strconv.Atoi(strings.TrimSuffix(f, "L"))
				if err != nil || d < 0 {
					return h, fmt.Errorf("bad dimension %q", f)
				}
				h.shape = append(h.shape, d)
			}
			s = rest[end+1:]
		default:
			return h, fmt.Errorf("unknown key %q", key)
		}
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return h, fmt.Errorf("no %q", k)
		}
	}
	return h, nil
}

// npyString reads a quoted Python string at the start of s and returns it and the rest.
func npyString(s string) (string, string, error) {
	if s == "" || (s[0] != '\'' && s[0] != '"') {
		return "", "", fmt.Errorf("want a quoted string at %q", s)
	}
	end := strings.IndexByte(s[1:], s[0])
	if end < 0 {
		return "", "", fmt.Errorf("unterminated string at %q", s)
	}
	return s[1 : 1+end], s[2+end:], nil
}

// halfToFloat32 converts an IEEE 754 binary16 value exactly.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // infinity or NaN, payload kept
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal half: normalise into a float32 exponent.
	e := uint32(113)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}
