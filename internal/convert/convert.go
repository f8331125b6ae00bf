// Package convert turns a caller's value into a field's type where no meaning is lost.
package convert

import (
	"math"
	"reflect"
)

// Exactly converts between number types, or between string types,
// when the value survives the round trip; never between kinds (Go would turn
// an int into a one-rune string).
func Exactly(v reflect.Value, to reflect.Type) (reflect.Value, bool) {
	kindOf := func(k reflect.Kind) int {
		switch {
		case k >= reflect.Int && k <= reflect.Float64:
			return 1
		case k == reflect.String:
			return 2
		}
		return 0
	}
	from := kindOf(v.Kind())
	if from == 0 || from != kindOf(to.Kind()) || !v.CanConvert(to) {
		return reflect.Value{}, false
	}
	c := v.Convert(to)
	if !c.CanConvert(v.Type()) || !c.Convert(v.Type()).Equal(v) {
		return reflect.Value{}, false
	}
	return c, true
}

// Assign stores value in dst, converting where no meaning is lost: to and
// from a pointer, into a wrapper type (one that wraps reports, such as
// field.Encrypted, through its Set method), between number types when the
// number fits, between string types.
func Assign(dst reflect.Value, value any, wraps func(reflect.Type) bool) bool {
	if value == nil {
		dst.SetZero()
		return true
	}
	return assign(dst, reflect.ValueOf(value), wraps)
}

func assign(dst, v reflect.Value, wraps func(reflect.Type) bool) bool {
	dt := dst.Type()
	switch {
	case v.Type().AssignableTo(dt):
		dst.Set(v)
		return true
	case wraps(dt):
		set := dst.Addr().MethodByName("Set")
		if !set.IsValid() || set.Type().NumIn() != 1 {
			return false
		}
		plain := reflect.New(set.Type().In(0)).Elem()
		if !assign(plain, v, wraps) {
			return false
		}
		set.Call([]reflect.Value{plain})
		return true
	case dt.Kind() == reflect.Pointer:
		ptr := reflect.New(dt.Elem())
		if !assign(ptr.Elem(), v, wraps) {
			return false
		}
		dst.Set(ptr)
		return true
	case v.Kind() == reflect.String && dt.Kind() == reflect.String:
		dst.SetString(v.String())
		return true
	case v.Kind() == reflect.Pointer && !v.IsNil():
		return assign(dst, v.Elem(), wraps)
	}
	return assignNumber(dst, v)
}

func assignNumber(dst, v reflect.Value) bool {
	switch {
	case v.CanInt():
		return assignInt(dst, v.Int())
	case v.CanUint():
		return assignUint(dst, v.Uint())
	case v.CanFloat():
		return assignFloat(dst, v.Float())
	}
	return false
}

func assignInt(dst reflect.Value, n int64) bool {
	switch {
	case dst.CanInt() && !dst.OverflowInt(n):
		dst.SetInt(n)
	case dst.CanUint() && n >= 0 && !dst.OverflowUint(uint64(n)):
		dst.SetUint(uint64(n))
	case dst.CanFloat() && !dst.OverflowFloat(float64(n)) && int64(float64(n)) == n:
		dst.SetFloat(float64(n))
	default:
		return false
	}
	return true
}

func assignUint(dst reflect.Value, n uint64) bool {
	switch {
	case dst.CanInt() && n <= math.MaxInt64 && !dst.OverflowInt(int64(n)):
		dst.SetInt(int64(n))
	case dst.CanUint() && !dst.OverflowUint(n):
		dst.SetUint(n)
	case dst.CanFloat() && uint64(float64(n)) == n:
		dst.SetFloat(float64(n))
	default:
		return false
	}
	return true
}

func assignFloat(dst reflect.Value, f float64) bool {
	whole := f == math.Trunc(f)
	switch {
	case dst.CanFloat() && !dst.OverflowFloat(f):
		dst.SetFloat(f)
	case dst.CanInt() && whole && f >= math.MinInt64 && f < math.MaxInt64 && !dst.OverflowInt(int64(f)):
		dst.SetInt(int64(f))
	case dst.CanUint() && whole && f >= 0 && f < math.MaxUint64 && !dst.OverflowUint(uint64(f)):
		dst.SetUint(uint64(f))
	default:
		return false
	}
	return true
}
