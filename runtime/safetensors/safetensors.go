// Package safetensors reads and writes the safetensors checkpoint format, the layout the wider
// ecosystem (HF transformers, candle, llama.cpp converters) uses for weights, so models move
// between this runtime and other tools.
//
// A file is: 8 bytes little-endian uint64 N; N bytes of UTF-8 JSON header
// {"__metadata__": {string: string}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...},
// padded with spaces; then the data section, where each tensor occupies [begin, end) (offsets
// relative to the start of the data), row-major, little-endian. The tensors must cover the data
// section exactly: no holes, no overlaps, nothing left over.
//
// The reader treats a file as hostile: every number in the header is checked before it is used,
// and every failure is an error naming the problem, never a panic or an out-of-range read.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/moegpu/moegpu/internal/atomicfile"

	"github.com/x448/float16"
)

// DType is a safetensors element type, spelled as in the header.
type DType string

// The element types of the safetensors format. F16 and BF16 are read into float32 by Float32;
// the 8-bit floats and BOOL can be read and written as raw bytes only.
const (
	BOOL    DType = "BOOL"
	U8      DType = "U8"
	I8      DType = "I8"
	F8E5M2  DType = "F8_E5M2"
	F8E4M3  DType = "F8_E4M3"
	I16     DType = "I16"
	U16     DType = "U16"
	F16     DType = "F16"
	BF16    DType = "BF16"
	I32     DType = "I32"
	U32     DType = "U32"
	F32     DType = "F32"
	F64     DType = "F64"
	I64     DType = "I64"
	U64     DType = "U64"
	metaKey       = "__metadata__"
)

// MaxHeaderSize bounds the JSON header, as the reference implementation does (100 MB), so a
// corrupt length cannot make the reader allocate without limit.
const MaxHeaderSize = 100_000_000

var dtypeSizes = map[DType]int{
	BOOL: 1, U8: 1, I8: 1, F8E5M2: 1, F8E4M3: 1,
	I16: 2, U16: 2, F16: 2, BF16: 2,
	I32: 4, U32: 4, F32: 4,
	F64: 8, I64: 8, U64: 8,
}

// Size is the number of bytes of one element, or 0 for an unknown dtype.
func (d DType) Size() int { return dtypeSizes[d] }

// Valid reports whether d is one of the format's element types.
func (d DType) Valid() bool { return dtypeSizes[d] != 0 }

// Tensor is one named array: its element type, its shape (outermost first, row-major) and its
// raw little-endian bytes. Checkpoints are lists of these.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// File is the content of a safetensors file: its tensors sorted by name, and the free-form
// string metadata (nil when the file has no "__metadata__").
type File struct {
	Tensors  []Tensor
	Metadata map[string]string
}

// Get returns the tensor called name, so callers need not search the list.
func (f *File) Get(name string) (*Tensor, bool) {
	i := sort.Search(len(f.Tensors), func(i int) bool { return f.Tensors[i].Name >= name })
	if i < len(f.Tensors) && f.Tensors[i].Name == name {
		return &f.Tensors[i], true
	}
	return nil, false
}

// NumElements is the product of the shape (1 for a scalar, shape []), or an error if it is
// negative or overflows.
func NumElements(shape []int) (int, error) {
	n := uint64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d in shape %v", d, shape)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt {
			return 0, fmt.Errorf("shape %v has too many elements", shape)
		}
		n = lo
	}
	return int(n), nil
}

// byteLen is the byte size of a tensor of this dtype and shape, with overflow checks.
func byteLen(d DType, shape []int) (int, error) {
	if !d.Valid() {
		return 0, fmt.Errorf("unknown dtype %q", string(d))
	}
	n, err := NumElements(shape)
	if err != nil {
		return 0, err
	}
	hi, lo := bits.Mul64(uint64(n), uint64(d.Size()))
	if hi != 0 || lo > math.MaxInt {
		return 0, fmt.Errorf("shape %v of %s is too many bytes", shape, d)
	}
	return int(lo), nil
}

// Validate checks that the tensor can be written: a name, a known dtype, and exactly as many
// bytes as its dtype and shape need.
func (t *Tensor) Validate() error {
	if err := checkName(t.Name); err != nil {
		return err
	}
	want, err := byteLen(t.DType, t.Shape)
	if err != nil {
		return fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	if len(t.Data) != want {
		return fmt.Errorf("tensor %q: %s %v needs %d bytes, has %d", t.Name, t.DType, t.Shape, want, len(t.Data))
	}
	return nil
}

// checkName is the one rule for tensor names, applied by the reader and the writer alike, so
// every file Read accepts can be written back: a name is non-empty valid UTF-8 and not the
// metadata key.
func checkName(name string) error {
	if name == "" {
		return errors.New("tensor has an empty name")
	}
	if name == metaKey {
		return fmt.Errorf("tensor name %q is reserved for the metadata", metaKey)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("tensor name %q is not valid UTF-8", name)
	}
	return nil
}

// ---- reading ----

// Read reads and validates the safetensors file at path.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	return f, nil
}

// ReadBytes parses and validates a safetensors file held in memory. The tensors' Data slices
// alias b, so b must not be modified while they are in use.
func ReadBytes(b []byte) (*File, error) {
	f, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return f, nil
}

type span struct {
	name       string
	begin, end uint64
}

func parse(b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("file is %d bytes, too short for the 8-byte header length (truncated?)", len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("header length %d is over the %d-byte limit (corrupt file?)", n, MaxHeaderSize)
	}
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("header length %d runs past the end of the %d-byte file (truncated?)", n, len(b))
	}
	header := b[8 : 8+n]
	data := b[8+n:]
	if n == 0 || header[0] != '{' {
		return nil, errors.New("header does not start with '{'")
	}
	if !utf8.Valid(header) {
		return nil, errors.New("header is not valid UTF-8")
	}

	raw, err := splitHeader(header)
	if err != nil {
		return nil, err
	}

	f := &File{}
	spans := make([]span, 0, len(raw))
	for _, kv := range raw {
		name, val := kv.key, kv.val
		if name == metaKey {
			md, err := parseMetadata(val)
			if err != nil {
				return nil, err
			}
			f.Metadata = md
			continue
		}
		if err := checkName(name); err != nil {
			return nil, err
		}
		t, s, err := parseEntry(name, val)
		if err != nil {
			return nil, err
		}
		f.Tensors = append(f.Tensors, t)
		spans = append(spans, s)
	}

	if err := checkCoverage(spans, uint64(len(data))); err != nil {
		return nil, err
	}
	for i := range f.Tensors {
		s := spans[i]
		f.Tensors[i].Data = data[s.begin:s.end:s.end]
	}
	sort.Slice(f.Tensors, func(i, j int) bool { return f.Tensors[i].Name < f.Tensors[j].Name })
	return f, nil
}

type keyVal struct {
	key string
	val json.RawMessage
}

// splitHeader decodes the top-level JSON object key by key, so duplicate names are caught (a
// map would silently keep the last one), and requires that only space padding follows it.
func splitHeader(header []byte) ([]keyVal, error) {
	dec := json.NewDecoder(bytes.NewReader(header))
	out, err := splitObject(dec, "header")
	if err != nil {
		return nil, err
	}
	off := dec.InputOffset()
	if len(bytes.TrimRight(header[off:], " \t\r\n")) != 0 {
		return nil, fmt.Errorf("header has data after the JSON object at byte %d (only space padding may follow)", off)
	}
	return out, nil
}

// splitObject reads one JSON object from dec as an ordered list of keys and raw values,
// refusing duplicate keys. what names the object in errors.
func splitObject(dec *json.Decoder, what string) ([]keyVal, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %v", what, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%s is not a JSON object", what)
	}
	seen := map[string]bool{}
	var out []keyVal
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s is not valid JSON: %v", what, err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("%s is not valid JSON: object key is not a string", what)
		}
		if seen[key] {
			if what == "header" {
				return nil, fmt.Errorf("duplicate name %q in header", key)
			}
			return nil, fmt.Errorf("%s: duplicate key %q", what, key)
		}
		seen[key] = true
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("%s is not valid JSON at %q: %v", what, key, err)
		}
		out = append(out, keyVal{key, val})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, fmt.Errorf("%s is not valid JSON: %v", what, err)
	}
	return out, nil
}

func parseMetadata(val json.RawMessage) (map[string]string, error) {
	var m map[string]any
	if err := json.Unmarshal(val, &m); err != nil || m == nil {
		return nil, fmt.Errorf("%q must be an object of string values", metaKey)
	}
	md := make(map[string]string, len(m))
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%q: value of %q is not a string", metaKey, k)
		}
		md[k] = s
	}
	return md, nil
}

func parseEntry(name string, val json.RawMessage) (Tensor, span, error) {
	what := fmt.Sprintf("tensor %q", name)
	fail := func(format string, a ...any) (Tensor, span, error) {
		return Tensor{}, span{}, fmt.Errorf(what+": "+format, a...)
	}
	fields, err := splitObject(json.NewDecoder(bytes.NewReader(val)), what+" header entry")
	if err != nil {
		return Tensor{}, span{}, err
	}
	var (
		dtype            string
		shape            []int
		offs             []uint64
		hasD, hasS, hasO bool
	)
	for _, f := range fields {
		var dst any
		switch f.key {
		case "dtype":
			dst, hasD = &dtype, true
		case "shape":
			dst, hasS = &shape, true
		case "data_offsets":
			dst, hasO = &offs, true
		default:
			return fail("unknown key %q in header entry (want dtype, shape, data_offsets)", f.key)
		}
		if bytes.Equal(bytes.TrimSpace(f.val), []byte("null")) {
			return fail("%s is null", f.key)
		}
		if err := json.Unmarshal(f.val, dst); err != nil {
			return fail("bad %s %s: %v", f.key, f.val, err)
		}
	}
	switch {
	case !hasD:
		return fail("header entry has no dtype")
	case !hasS:
		return fail("header entry has no shape")
	case !hasO:
		return fail("header entry has no data_offsets")
	}
	d := DType(dtype)
	if !d.Valid() {
		return fail("unknown dtype %q", dtype)
	}
	if len(offs) != 2 {
		return fail("data_offsets has %d values, want [begin, end]", len(offs))
	}
	begin, end := offs[0], offs[1]
	if begin > end {
		return fail("data_offsets [%d, %d] end before they begin", begin, end)
	}
	want, err := byteLen(d, shape)
	if err != nil {
		return fail("%v", err)
	}
	if end-begin != uint64(want) {
		return fail("%s %v needs %d bytes but data_offsets [%d, %d] hold %d", d, shape, want, begin, end, end-begin)
	}
	return Tensor{Name: name, DType: d, Shape: shape}, span{name, begin, end}, nil
}

// checkCoverage requires the spans, in offset order, to tile [0, dataLen) exactly.
func checkCoverage(spans []span, dataLen uint64) error {
	sorted := append([]span(nil), spans...)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].begin != sorted[j].begin {
			return sorted[i].begin < sorted[j].begin
		}
		return sorted[i].end < sorted[j].end
	})
	var pos uint64
	prev := ""
	for _, s := range sorted {
		if s.end > dataLen {
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] run past the end of the %d-byte data section (truncated file?)",
				s.name, s.begin, s.end, dataLen)
		}
		if s.begin < pos {
			return fmt.Errorf("tensors %q and %q overlap at data offset %d", prev, s.name, s.begin)
		}
		if s.begin > pos {
			return fmt.Errorf("data bytes [%d, %d) belong to no tensor (hole before %q)", pos, s.begin, s.name)
		}
		pos = s.end
		prev = s.name
	}
	if pos != dataLen {
		return fmt.Errorf("data section is %d bytes but the tensors cover only %d (trailing bytes)", dataLen, pos)
	}
	return nil
}

// ---- writing ----

// Marshal encodes tensors and metadata as a safetensors file: tensors sorted by name with
// contiguous offsets, "__metadata__" first (omitted when empty), the header padded with spaces to
// a multiple of 8 bytes as the reference implementation does, so the data starts 8-byte aligned.
func Marshal(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	sorted := make([]*Tensor, len(tensors))
	for i := range tensors {
		sorted[i] = &tensors[i]
		if err := tensors[i].Validate(); err != nil {
			return nil, fmt.Errorf("safetensors: %w", err)
		}
	}
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Name == sorted[i-1].Name {
			return nil, fmt.Errorf("safetensors: duplicate tensor name %q", sorted[i].Name)
		}
	}
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, fmt.Errorf("safetensors: metadata %q is not valid UTF-8", k)
		}
	}

	var h bytes.Buffer
	h.WriteByte('{')
	if len(metadata) > 0 {
		md, err := json.Marshal(metadata) // sorted keys
		if err != nil {
			return nil, fmt.Errorf("safetensors: metadata: %w", err)
		}
		h.WriteString(`"` + metaKey + `":`)
		h.Write(md)
	}
	var off uint64
	for i, t := range sorted {
		if i > 0 || len(metadata) > 0 {
			h.WriteByte(',')
		}
		name, err := json.Marshal(t.Name)
		if err != nil {
			return nil, fmt.Errorf("safetensors: tensor name %q: %w", t.Name, err)
		}
		h.Write(name)
		h.WriteString(`:{"dtype":"` + string(t.DType) + `","shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		end := off + uint64(len(t.Data))
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, off, end)
		off = end
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}

	out := make([]byte, 0, 8+h.Len()+int(off))
	out = binary.LittleEndian.AppendUint64(out, uint64(h.Len()))
	out = append(out, h.Bytes()...)
	for _, t := range sorted {
		out = append(out, t.Data...)
	}
	return out, nil
}

// Write writes tensors and metadata to path atomically: the bytes go to a temp file in the same
// directory, which is synced and then renamed over path, so a crash never leaves a half-written
// checkpoint in place of a good one.
func Write(path string, tensors []Tensor, metadata map[string]string) error {
	b, err := Marshal(tensors, metadata)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, b); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	return nil
}

// ---- typed views ----

func (t *Tensor) checkDType(want DType) error {
	if t.DType != want {
		return fmt.Errorf("tensor %q is %s, not %s", t.Name, t.DType, want)
	}
	if len(t.Data)%want.Size() != 0 {
		return fmt.Errorf("tensor %q: %d bytes is not a whole number of %s elements", t.Name, len(t.Data), want)
	}
	return nil
}

// Float32 decodes a floating-point tensor (F32, F16, BF16, F64) into float32 values; F16 and
// BF16 widen exactly, F64 rounds to nearest.
func (t *Tensor) Float32() ([]float32, error) {
	switch t.DType {
	case F32:
		if err := t.checkDType(F32); err != nil {
			return nil, err
		}
		out := make([]float32, len(t.Data)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
		return out, nil
	case F16:
		if err := t.checkDType(F16); err != nil {
			return nil, err
		}
		out := make([]float32, len(t.Data)/2)
		for i := range out {
			out[i] = float16.Frombits(binary.LittleEndian.Uint16(t.Data[2*i:])).Float32()
		}
		return out, nil
	case BF16:
		if err := t.checkDType(BF16); err != nil {
			return nil, err
		}
		out := make([]float32, len(t.Data)/2)
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.Data[2*i:])) << 16)
		}
		return out, nil
	case F64:
		if err := t.checkDType(F64); err != nil {
			return nil, err
		}
		out := make([]float32, len(t.Data)/8)
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:])))
		}
		return out, nil
	}
	return nil, fmt.Errorf("tensor %q is %s, not a floating-point type (F32, F16, BF16, F64)", t.Name, t.DType)
}

// Uint32 returns the values of a U32 tensor (token ids, expert indices).
func (t *Tensor) Uint32() ([]uint32, error) {
	if err := t.checkDType(U32); err != nil {
		return nil, err
	}
	out := make([]uint32, len(t.Data)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(t.Data[4*i:])
	}
	return out, nil
}

// Int32 returns the values of an I32 tensor.
func (t *Tensor) Int32() ([]int32, error) {
	if err := t.checkDType(I32); err != nil {
		return nil, err
	}
	out := make([]int32, len(t.Data)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out, nil
}

// Int64 returns the values of an I64 tensor (the dtype PyTorch uses for indices and counters).
func (t *Tensor) Int64() ([]int64, error) {
	if err := t.checkDType(I64); err != nil {
		return nil, err
	}
	out := make([]int64, len(t.Data)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return out, nil
}

func checkShape(name string, shape []int, n int) error {
	want, err := NumElements(shape)
	if err != nil {
		return fmt.Errorf("tensor %q: %w", name, err)
	}
	if want != n {
		return fmt.Errorf("tensor %q: shape %v holds %d elements, got %d values", name, shape, want, n)
	}
	return nil
}

// FromFloat32 builds an F32 tensor from values in row-major order; the shape must hold exactly
// len(v) elements.
func FromFloat32(name string, shape []int, v []float32) (Tensor, error) {
	if err := checkShape(name, shape, len(v)); err != nil {
		return Tensor{}, err
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return Tensor{Name: name, DType: F32, Shape: append([]int{}, shape...), Data: b}, nil
}

// FromUint32 builds a U32 tensor from values in row-major order.
func FromUint32(name string, shape []int, v []uint32) (Tensor, error) {
	if err := checkShape(name, shape, len(v)); err != nil {
		return Tensor{}, err
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], x)
	}
	return Tensor{Name: name, DType: U32, Shape: append([]int{}, shape...), Data: b}, nil
}

// FromInt32 builds an I32 tensor from values in row-major order.
func FromInt32(name string, shape []int, v []int32) (Tensor, error) {
	if err := checkShape(name, shape, len(v)); err != nil {
		return Tensor{}, err
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return Tensor{Name: name, DType: I32, Shape: append([]int{}, shape...), Data: b}, nil
}

// FromInt64 builds an I64 tensor from values in row-major order.
func FromInt64(name string, shape []int, v []int64) (Tensor, error) {
	if err := checkShape(name, shape, len(v)); err != nil {
		return Tensor{}, err
	}
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return Tensor{Name: name, DType: I64, Shape: append([]int{}, shape...), Data: b}, nil
}
