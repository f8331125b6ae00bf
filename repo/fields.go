package repo

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// attr is one attribute of a struct type, found by the rules attributevalue
// follows: the `dynamodbav` name or else the Go name; "-" and unexported
// fields skipped; untagged embedded structs flattened; for each name the
// shallowest field wins, a tagged one among equals, and a name still shared
// is dropped.
type attr struct {
	name   string
	goName string // Owner.Field, for messages
	index  []int
	typ    reflect.Type
	tag    reflect.StructTag
	tagged bool
	// node is where encrypted values sit in the attribute; nil when it
	// holds none.
	node *node
	// wrapper is a one-field struct with the field's type and tag:
	// marshalling it marshals a value exactly as this attribute, options
	// (",string", ",unixtime", "omitempty") included.
	wrapper reflect.Type
}

// hiddenField is a field attributevalue does not see, with the reason, or
// (unusable) one it sees but cannot read or fill.
type hiddenField struct {
	goName   string
	tag      reflect.StructTag
	why      string
	unusable bool
}

// structFields returns the attributes of struct type t in field order, and
// the fields with a `repo` or `enc` tag that attributevalue would not see.
func structFields(t reflect.Type) ([]*attr, []hiddenField) {
	all, hidden := enumerate(t)
	slices.SortStableFunc(all, func(a, b *attr) int {
		return cmp.Or(strings.Compare(a.name, b.name), cmp.Compare(len(a.index), len(b.index)), boolFirst(a.tagged, b.tagged))
	})
	var visible []*attr
	for group := range groupByName(all) {
		win, lost := dominant(group)
		if win != nil {
			visible = append(visible, win)
		}
		for _, f := range lost {
			hidden = append(hidden, hiddenField{goName: f.goName, tag: f.tag, why: lostReason(f, win, group)})
		}
	}
	slices.SortFunc(visible, func(a, b *attr) int { return slices.Compare(a.index, b.index) })
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
func groupByName(fs []*attr) func(func([]*attr) bool) {
	return func(yield func([]*attr) bool) {
		for i := 0; i < len(fs); {
			j := i + 1
			for j < len(fs) && fs[j].name == fs[i].name {
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
func dominant(group []*attr) (*attr, []*attr) {
	depth := len(group[0].index)
	shallow := len(group)
	for i, f := range group {
		if len(f.index) > depth {
			shallow = i
			break
		}
	}
	top := group[:shallow]
	var win *attr
	switch tagged := countTagged(top); {
	case len(top) == 1:
		win = top[0]
	case tagged == 1:
		win = top[0] // tagged fields sort first
	}
	var lost []*attr
	for _, f := range group {
		if f != win {
			lost = append(lost, f)
		}
	}
	return win, lost
}

func countTagged(fs []*attr) int {
	n := 0
	for _, f := range fs {
		if f.tagged {
			n++
		}
	}
	return n
}

func lostReason(f, win *attr, group []*attr) string {
	if win != nil {
		return fmt.Sprintf("attribute %q is taken by %s, which is shallower or tagged", f.name, win.goName)
	}
	var others []string
	for _, g := range group {
		if g != f && len(g.index) == len(f.index) {
			others = append(others, g.goName)
		}
	}
	if len(others) == 0 { // the same embedded type reached twice
		return fmt.Sprintf("attribute %q is ambiguous: its struct is embedded more than once at the same depth, so attributevalue drops it", f.name)
	}
	return fmt.Sprintf("attribute %q is ambiguous: %s has the same name at the same depth, so attributevalue drops both", f.name, strings.Join(others, ", "))
}

// enumerate lists the candidate fields of t breadth-first through untagged
// embedded structs. A struct type reached twice at one depth yields its
// fields twice, so that they cancel out as attributevalue's do.
func enumerate(t reflect.Type) ([]*attr, []hiddenField) {
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
	out     []*attr
	hidden  []hiddenField
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
			e.hidden = append(e.hidden, hiddenField{goName, sf.Tag, why, unusable})
		case sf.Anonymous && name == "" && ft.Kind() == reflect.Struct:
			if e.count[ft]++; e.count[ft] == 1 {
				e.next = append(e.next, embedded{t: ft, index: append(slices.Clip(q.index), i), owner: goName})
			}
		default:
			f := &attr{name: cmp.Or(name, sf.Name), goName: goName, index: append(slices.Clip(q.index), i), typ: sf.Type, tag: sf.Tag, tagged: name != ""}
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
