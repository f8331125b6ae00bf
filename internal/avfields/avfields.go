// Package avfields finds the attributes of a struct type exactly as attributevalue does, and says why a field is not one.
package avfields

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Field is one attribute of a struct type, found by the rules attributevalue
// follows: the `dynamodbav` name or else the Go name; "-" and unexported
// fields skipped; untagged embedded structs flattened; for each name the
// shallowest field wins, a tagged one among equals, and a name still shared
// is dropped.
type Field struct {
	Name   string
	GoName string // Owner.Field, for messages
	Index  []int
	Type   reflect.Type
	Tag    reflect.StructTag
	Tagged bool
}

// Hidden is a field attributevalue does not see, with the reason, or
// (Unusable) one it sees but cannot read or fill.
type Hidden struct {
	GoName   string
	Tag      reflect.StructTag
	Why      string
	Unusable bool
}

// Of returns the attributes of struct type t in field order, and the fields
// attributevalue does not see or cannot use.
func Of(t reflect.Type) ([]*Field, []Hidden) {
	all, hidden := enumerate(t)
	slices.SortStableFunc(all, func(a, b *Field) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), cmp.Compare(len(a.Index), len(b.Index)), boolFirst(a.Tagged, b.Tagged))
	})
	var visible []*Field
	for group := range groupByName(all) {
		win, lost := dominant(group)
		if win != nil {
			visible = append(visible, win)
		}
		for _, f := range lost {
			hidden = append(hidden, Hidden{GoName: f.GoName, Tag: f.Tag, Why: lostReason(f, win, group)})
		}
	}
	slices.SortFunc(visible, func(a, b *Field) int { return slices.Compare(a.Index, b.Index) })
	return visible, hidden
}

func boolFirst(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}

// groupByName yields runs of fields with the same name from a sorted slice.
func groupByName(fs []*Field) func(func([]*Field) bool) {
	return func(yield func([]*Field) bool) {
		for i := 0; i < len(fs); {
			j := i + 1
			for j < len(fs) && fs[j].Name == fs[i].Name {
				j++
			}
			if !yield(fs[i:j]) {
				return
			}
			i = j
		}
	}
}

// dominant picks the field that wins its name, as encoding/json and
// attributevalue do, and returns the others. The group is sorted by depth,
// tagged first.
func dominant(group []*Field) (*Field, []*Field) {
	depth := len(group[0].Index)
	shallow := len(group)
	for i, f := range group {
		if len(f.Index) > depth {
			shallow = i
			break
		}
	}
	top := group[:shallow]
	var win *Field
	switch tagged := countTagged(top); {
	case len(top) == 1:
		win = top[0]
	case tagged == 1:
		win = top[0] // tagged fields sort first
	}
	var lost []*Field
	for _, f := range group {
		if f != win {
			lost = append(lost, f)
		}
	}
	return win, lost
}

func countTagged(fs []*Field) int {
	n := 0
	for _, f := range fs {
		if f.Tagged {
			n++
		}
	}
	return n
}

func lostReason(f, win *Field, group []*Field) string {
	if win != nil {
		return fmt.Sprintf("attribute %q is taken by %s, which is shallower or tagged", f.Name, win.GoName)
	}
	var others []string
	for _, g := range group {
		if g != f && len(g.Index) == len(f.Index) {
			others = append(others, g.GoName)
		}
	}
	if len(others) == 0 { // the same embedded type reached twice
		return fmt.Sprintf("attribute %q is ambiguous: its struct is embedded more than once at the same depth, so attributevalue drops it", f.Name)
	}
	return fmt.Sprintf("attribute %q is ambiguous: %s has the same name at the same depth, so attributevalue drops both", f.Name, strings.Join(others, ", "))
}

// enumerate lists the candidate fields of t breadth-first through untagged
// embedded structs. A struct type reached twice at one depth yields its
// fields twice, so that they cancel out as attributevalue's do.
func enumerate(t reflect.Type) ([]*Field, []Hidden) {
	e := enumeration{visited: map[reflect.Type]bool{}}
	next := []embedded{{t: t, owner: t.Name()}}
	for len(next) > 0 {
		e.seen, e.count = e.count, map[reflect.Type]int{}
		current := next
		e.next = nil
		for _, q := range current {
			if !e.visited[q.t] {
				e.visited[q.t] = true
				e.level(q)
			}
		}
		next = e.next
	}
	return e.out, e.hidden
}

// embedded is a struct type to enumerate, at index in the outer type.
type embedded struct {
	t     reflect.Type
	index []int
	owner string
}

type enumeration struct {
	out     []*Field
	hidden  []Hidden
	visited map[reflect.Type]bool
	next    []embedded
	// seen counts the struct types queued for this depth, count those
	// queued for the next.
	seen, count map[reflect.Type]int
}

// level adds the fields of one embedded struct.
func (e *enumeration) level(q embedded) {
	for i := range q.t.NumField() {
		sf := q.t.Field(i)
		goName := q.owner + "." + sf.Name
		name, _, _ := strings.Cut(sf.Tag.Get("dynamodbav"), ",")
		ft := sf.Type
		if ft.Name() == "" && ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch why, unusable := unseen(sf, name, ft); {
		case why != "":
			e.hidden = append(e.hidden, Hidden{goName, sf.Tag, why, unusable})
		case sf.Anonymous && name == "" && ft.Kind() == reflect.Struct:
			if e.count[ft]++; e.count[ft] == 1 {
				e.next = append(e.next, embedded{t: ft, index: append(slices.Clip(q.index), i), owner: goName})
			}
		default:
			f := &Field{Name: cmp.Or(name, sf.Name), GoName: goName, Index: append(slices.Clip(q.index), i), Type: sf.Type, Tag: sf.Tag, Tagged: name != ""}
			e.out = append(e.out, f)
			if e.seen[q.t] > 1 {
				e.out = append(e.out, f)
			}
		}
	}
}

// unseen says why attributevalue does not see a field, or (unusable) sees
// one it cannot read or fill; "" when it sees it. ft is the field's type
// behind an unnamed pointer.
func unseen(sf reflect.StructField, name string, ft reflect.Type) (why string, unusable bool) {
	switch {
	case !sf.IsExported() && !sf.Anonymous:
		return "it is unexported", false
	case name == "-":
		return "its tag is `dynamodbav:\"-\"`", false
	case sf.Anonymous && !sf.IsExported() && (ft.Kind() != reflect.Struct || sf.Type.Kind() == reflect.Pointer):
		return "an unexported embedded pointer or non-struct type cannot be read or filled by attributevalue (it panics); export the type or tag the field `dynamodbav:\"-\"`", true
	}
	return "", false
}
