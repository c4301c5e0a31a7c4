package blobdataset

// Parquet leaf values and their JSON forms. leafJSON and leafValue are each
// other's inverse for every value leafJSON returns, so a row read, edited in
// one field and written back keeps every other value exactly; the JSON form
// keeps what the logical type means:
//
//   - strings, enums and JSON text: the string;
//   - integers (any width, signed or not, with or without an INT
//     annotation): a json.Number, never a float;
//   - DECIMAL: the exact decimal as a json.Number ("12.30" with scale 2);
//   - DATE: "YYYY-MM-DD";
//   - TIMESTAMP: RFC 3339 with the unit's precision, in UTC ("Z") when the
//     timestamp is adjusted to UTC, without an offset (a local date-time)
//     when it is not; legacy INT96 timestamps as UTC;
//   - TIME: "hh:mm:ss" with the unit's fraction;
//   - UUID: the canonical 8-4-4-4-12 form;
//   - FLOAT, DOUBLE: the shortest json.Number that reads back to the same
//     bits ("NaN", "+Inf", "-Inf" as strings);
//   - BOOLEAN: true or false;
//   - other byte arrays (no annotation, BSON, FLOAT16, ...): standard
//     base64, as encoding/json writes []byte.
//
// Dates and timestamps outside the years 0001-9999 have no RFC 3339 form:
// they are exported as Go formats them but cannot be written back, so a
// rewrite that must encode one (an edited field holding it) fails rather
// than change it. Rewrite copies unedited fields as they are, so such
// values elsewhere in the file are never touched.

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"
)

// Layouts of the JSON forms of dates, times and timestamps.
const (
	dateLayout  = "2006-01-02"
	localLayout = "2006-01-02T15:04:05.999999999"
	utcLayout   = "2006-01-02T15:04:05.999999999Z07:00"
	timeLayout  = "15:04:05.999999999"
)

// julianUnixEpoch is the Julian day of 1970-01-01 (INT96 timestamps).
const julianUnixEpoch = 2440588

// unitOf returns the nanoseconds of one tick of a TIME or TIMESTAMP unit.
func unitOf(u format.TimeUnit) int64 {
	switch u.Value.(type) {
	case *format.MilliSeconds:
		return 1e6
	case *format.MicroSeconds:
		return 1e3
	}
	return 1
}

// ticksTime is the instant ticks units of unit after the Unix epoch.
func ticksTime(ticks, unit int64) time.Time {
	switch unit {
	case 1e6:
		return time.UnixMilli(ticks).UTC()
	case 1e3:
		return time.UnixMicro(ticks).UTC()
	}
	return time.Unix(0, ticks).UTC()
}

// timeTicks is ticksTime's inverse; a time with a finer fraction than the
// unit does not fit.
func timeTicks(t time.Time, unit int64) (int64, bool) {
	if int64(t.Nanosecond())%unit != 0 {
		return 0, false
	}
	switch unit {
	case 1e6:
		return t.UnixMilli(), true
	case 1e3:
		return t.UnixMicro(), true
	}
	ns := t.UnixNano()
	return ns, time.Unix(0, ns).Equal(t)
}

// leafJSON is the JSON form of a non-null leaf value of type t (a null
// gives nil).
func leafJSON(v parquet.Value, t parquet.Type) (any, error) {
	if v.IsNull() {
		return nil, nil
	}
	var lt format.LogicalTypeValue
	if l := t.LogicalType(); l != nil {
		lt = l.Value
	}
	switch x := lt.(type) {
	case *format.StringType, *format.EnumType, *format.JsonType:
		return string(v.ByteArray()), nil
	case *format.UUIDType:
		b := v.ByteArray()
		if len(b) != 16 {
			return nil, errors.New("a UUID that is not 16 bytes")
		}
		h := hex.EncodeToString(b)
		return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
	case *format.DecimalType:
		var u *big.Int
		switch v.Kind() {
		case parquet.Int32:
			u = big.NewInt(int64(v.Int32()))
		case parquet.Int64:
			u = big.NewInt(v.Int64())
		default:
			u = signedBytes(v.ByteArray())
		}
		return json.Number(decimalText(u, int(x.Scale))), nil
	case *format.DateType:
		return time.Unix(int64(v.Int32())*86400, 0).UTC().Format(dateLayout), nil
	case *format.TimeType:
		var ticks int64
		if v.Kind() == parquet.Int32 {
			ticks = int64(v.Int32())
		} else {
			ticks = v.Int64()
		}
		return time.Unix(0, ticks*unitOf(x.Unit)).UTC().Format(timeLayout), nil
	case *format.TimestampType:
		t := ticksTime(v.Int64(), unitOf(x.Unit))
		if x.IsAdjustedToUTC {
			return t.Format(utcLayout), nil
		}
		return t.Format(localLayout), nil
	case *format.IntType:
		if !x.IsSigned {
			if v.Kind() == parquet.Int32 {
				return json.Number(strconv.FormatUint(uint64(uint32(v.Int32())), 10)), nil
			}
			return json.Number(strconv.FormatUint(uint64(v.Int64()), 10)), nil
		}
	case *format.NullType:
		return nil, nil
	}
	switch v.Kind() {
	case parquet.Boolean:
		return v.Boolean(), nil
	case parquet.Int32:
		return json.Number(strconv.FormatInt(int64(v.Int32()), 10)), nil
	case parquet.Int64:
		return json.Number(strconv.FormatInt(v.Int64(), 10)), nil
	case parquet.Int96:
		i := v.Int96()
		nanos := int64(uint64(i[0]) | uint64(i[1])<<32)
		day := int64(i[2]) - julianUnixEpoch
		return time.Unix(day*86400, nanos).UTC().Format(utcLayout), nil
	case parquet.Float:
		return floatJSON(float64(v.Float()), 32), nil
	case parquet.Double:
		return floatJSON(v.Double(), 64), nil
	case parquet.ByteArray, parquet.FixedLenByteArray:
		return base64.StdEncoding.EncodeToString(v.ByteArray()), nil
	}
	return nil, fmt.Errorf("unsupported physical type %s", v.Kind())
}

func floatJSON(f float64, bits int) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, bits))
}

// signedBytes reads a big-endian two's complement integer.
func signedBytes(b []byte) *big.Int {
	u := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		u.Sub(u, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return u
}

// decimalText writes unscaled×10^-scale exactly.
func decimalText(u *big.Int, scale int) string {
	s := new(big.Int).Abs(u).String()
	neg := u.Sign() < 0
	if scale > 0 {
		if len(s) <= scale {
			s = strings.Repeat("0", scale-len(s)+1) + s
		}
		s = s[:len(s)-scale] + "." + s[len(s)-scale:]
	} else if scale < 0 {
		s += strings.Repeat("0", -scale)
	}
	if neg {
		s = "-" + s
	}
	return s
}

// errNoFit is a value that does not fit its column's type (the value is
// never named: it is personal data).
var errNoFit = errors.New("the value does not fit the column's type")

// leafText is the text of a JSON string or number.
func leafText(x any) (string, bool) {
	switch y := x.(type) {
	case string:
		return y, true
	case json.Number:
		return y.String(), true
	case float64:
		return strconv.FormatFloat(y, 'g', -1, 64), true
	case int:
		return strconv.Itoa(y), true
	case int64:
		return strconv.FormatInt(y, 10), true
	}
	return "", false
}

// leafValue is leafJSON's inverse: the value of type t that x, a non-nil
// JSON value, stands for.
func leafValue(x any, t parquet.Type) (parquet.Value, error) {
	var lt format.LogicalTypeValue
	if l := t.LogicalType(); l != nil {
		lt = l.Value
	}
	kind := t.Kind()
	text, isText := leafText(x)
	switch y := lt.(type) {
	case *format.StringType, *format.EnumType, *format.JsonType:
		if !isText {
			return parquet.Value{}, errNoFit
		}
		return bytesValue(kind, t, []byte(text))
	case *format.UUIDType:
		b, err := hex.DecodeString(strings.ReplaceAll(text, "-", ""))
		if !isText || err != nil || len(b) != 16 {
			return parquet.Value{}, errNoFit
		}
		return bytesValue(kind, t, b)
	case *format.DecimalType:
		r, ok := new(big.Rat).SetString(text)
		if !isText || !ok {
			return parquet.Value{}, errNoFit
		}
		r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(y.Scale)), nil)))
		if !r.IsInt() {
			return parquet.Value{}, errNoFit
		}
		u := r.Num()
		switch kind {
		case parquet.Int32:
			if !u.IsInt64() || u.Int64() != int64(int32(u.Int64())) {
				return parquet.Value{}, errNoFit
			}
			return parquet.Int32Value(int32(u.Int64())), nil
		case parquet.Int64:
			if !u.IsInt64() {
				return parquet.Value{}, errNoFit
			}
			return parquet.Int64Value(u.Int64()), nil
		}
		n := t.Length()
		if kind == parquet.ByteArray {
			n = (u.BitLen() + 8) / 8
		}
		b, ok := twosComplement(u, n)
		if !ok {
			return parquet.Value{}, errNoFit
		}
		return bytesValue(kind, t, b)
	case *format.DateType:
		d, err := time.Parse(dateLayout, text)
		if !isText || err != nil {
			return parquet.Value{}, errNoFit
		}
		return parquet.Int32Value(int32(d.Unix() / 86400)), nil
	case *format.TimeType:
		c, err := time.Parse(timeLayout, text)
		if !isText || err != nil {
			return parquet.Value{}, errNoFit
		}
		ns := int64(c.Hour())*int64(time.Hour) + int64(c.Minute())*int64(time.Minute) + int64(c.Second())*int64(time.Second) + int64(c.Nanosecond())
		unit := unitOf(y.Unit)
		if ns%unit != 0 {
			return parquet.Value{}, errNoFit
		}
		if kind == parquet.Int32 {
			return parquet.Int32Value(int32(ns / unit)), nil
		}
		return parquet.Int64Value(ns / unit), nil
	case *format.TimestampType:
		layout := localLayout
		if y.IsAdjustedToUTC {
			layout = utcLayout
		}
		ts, err := time.Parse(layout, text)
		if !isText || err != nil {
			return parquet.Value{}, errNoFit
		}
		ticks, ok := timeTicks(ts, unitOf(y.Unit))
		if !ok {
			return parquet.Value{}, errNoFit
		}
		return parquet.Int64Value(ticks), nil
	case *format.IntType:
		if !y.IsSigned {
			n, err := strconv.ParseUint(text, 10, int(y.BitWidth))
			if !isText || err != nil {
				return parquet.Value{}, errNoFit
			}
			if kind == parquet.Int32 {
				return parquet.Int32Value(int32(uint32(n))), nil
			}
			return parquet.Int64Value(int64(n)), nil
		}
		n, err := strconv.ParseInt(text, 10, int(y.BitWidth))
		if !isText || err != nil {
			return parquet.Value{}, errNoFit
		}
		if kind == parquet.Int32 {
			return parquet.Int32Value(int32(n)), nil
		}
		return parquet.Int64Value(n), nil
	case *format.NullType:
		return parquet.Value{}, errNoFit
	}
	switch kind {
	case parquet.Boolean:
		b, ok := x.(bool)
		if !ok {
			return parquet.Value{}, errNoFit
		}
		return parquet.BooleanValue(b), nil
	case parquet.Int32:
		n, err := strconv.ParseInt(text, 10, 32)
		if !isText || err != nil {
			return parquet.Value{}, errNoFit
		}
		return parquet.Int32Value(int32(n)), nil
	case parquet.Int64:
		n, err := strconv.ParseInt(text, 10, 64)
		if !isText || err != nil {
			return parquet.Value{}, errNoFit
		}
		return parquet.Int64Value(n), nil
	case parquet.Int96:
		ts, err := time.Parse(utcLayout, text)
		if !isText || err != nil {
			return parquet.Value{}, errNoFit
		}
		day := ts.Unix()/86400 + julianUnixEpoch
		if ts.Unix() < 0 && ts.Unix()%86400 != 0 {
			day--
		}
		nanos := ts.Sub(time.Unix((day-julianUnixEpoch)*86400, 0)).Nanoseconds()
		var i deprecated.Int96
		i[0], i[1], i[2] = uint32(uint64(nanos)), uint32(uint64(nanos)>>32), uint32(day)
		return parquet.Int96Value(i), nil
	case parquet.Float, parquet.Double:
		bits := 64
		if kind == parquet.Float {
			bits = 32
		}
		var f float64
		var err error
		switch text {
		case "NaN":
			f = math.NaN()
		case "+Inf":
			f = math.Inf(1)
		case "-Inf":
			f = math.Inf(-1)
		default:
			f, err = strconv.ParseFloat(text, bits)
		}
		if !isText || err != nil {
			return parquet.Value{}, errNoFit
		}
		if kind == parquet.Float {
			return parquet.FloatValue(float32(f)), nil
		}
		return parquet.DoubleValue(f), nil
	case parquet.ByteArray, parquet.FixedLenByteArray:
		s, ok := x.(string)
		if !ok {
			return parquet.Value{}, errNoFit
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return parquet.Value{}, errNoFit
		}
		return bytesValue(kind, t, b)
	}
	return parquet.Value{}, errNoFit
}

// bytesValue is a BYTE_ARRAY or FIXED_LEN_BYTE_ARRAY value of b.
func bytesValue(kind parquet.Kind, t parquet.Type, b []byte) (parquet.Value, error) {
	switch kind {
	case parquet.ByteArray:
		return parquet.ByteArrayValue(b), nil
	case parquet.FixedLenByteArray:
		if len(b) != t.Length() {
			return parquet.Value{}, errNoFit
		}
		return parquet.FixedLenByteArrayValue(b), nil
	}
	return parquet.Value{}, errNoFit
}

// twosComplement writes u big-endian in n bytes of two's complement.
func twosComplement(u *big.Int, n int) ([]byte, bool) {
	if n <= 0 {
		return nil, false
	}
	lim := new(big.Int).Lsh(big.NewInt(1), uint(8*n-1))
	if u.Cmp(lim) >= 0 || u.Cmp(new(big.Int).Neg(lim)) < 0 {
		return nil, false
	}
	v := new(big.Int).Set(u)
	if v.Sign() < 0 {
		v.Add(v, new(big.Int).Lsh(big.NewInt(1), uint(8*n)))
	}
	return v.FillBytes(make([]byte, n)), true
}
