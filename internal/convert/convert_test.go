package convert

import (
	"reflect"
	"testing"
)

func TestAssignKeepsMeaning(t *testing.T) {
	type name string
	none := func(reflect.Type) bool { return false }
	for _, c := range []struct {
		dst  any // pointer to the destination
		v    any
		want any
		ok   bool
	}{
		{new(int8), 127, int8(127), true},
		{new(int8), 128, int8(0), false},
		{new(uint), -1, uint(0), false},
		{new(float64), int64(1 << 53), float64(1 << 53), true},
		{new(int64), 2.5, int64(0), false},
		{new(int64), 3.0, int64(3), true},
		{new(name), "x", name("x"), true},
		{new(*int), 4, func() *int { v := 4; return &v }(), true},
		{new(string), 4, "", false},
	} {
		dst := reflect.ValueOf(c.dst).Elem()
		ok := Assign(dst, c.v, none)
		if ok != c.ok || (ok && !reflect.DeepEqual(dst.Interface(), c.want)) {
			t.Errorf("%T <- %#v: %v %v, want %v %v", c.dst, c.v, ok, dst.Interface(), c.ok, c.want)
		}
	}
}

func TestExactly(t *testing.T) {
	if _, ok := Exactly(reflect.ValueOf(300), reflect.TypeFor[uint8]()); ok {
		t.Error("300 fits a uint8")
	}
	if v, ok := Exactly(reflect.ValueOf(int64(7)), reflect.TypeFor[int]()); !ok || v.Int() != 7 {
		t.Error("7 does not fit an int")
	}
	if _, ok := Exactly(reflect.ValueOf(65), reflect.TypeFor[string]()); ok {
		t.Error("an int became a string")
	}
}
