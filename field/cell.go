package field

import (
	"reflect"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/internal/cell"
)

// seam is the repositories' view of an Encrypted (internal/cell.Cell); it
// keeps those methods out of the user's.
type seam[T any] Encrypted[T]

// sealable is met by every *Encrypted[T], and by pointers to structs that
// embed one (which cell.Is tells apart).
type sealable interface {
	cell() cell.Cell
	encryptedType() reflect.Type
}

func (e *Encrypted[T]) cell() cell.Cell { return (*seam[T])(e) }

func (e *Encrypted[T]) encryptedType() reflect.Type { return reflect.TypeFor[Encrypted[T]]() }

func init() {
	cell.Register(cell.Kind{
		Of: func(p any) cell.Cell { return p.(sealable).cell() },
		Is: func(t reflect.Type) bool {
			s, ok := reflect.New(t).Interface().(sealable)
			return ok && s.encryptedType() == t
		},
		Check: checkType,
	})
}

// update installs a changed copy of the state; states are never changed in
// place, since copies of an Encrypted share them.
func (c *seam[T]) update(change func(*state[T])) {
	if c.state == nil {
		return
	}
	s := *c.state
	change(&s)
	c.state = &s
}

func (c *seam[T]) Pending() ([]byte, bool, error) {
	if c.state == nil || !c.state.pending {
		return nil, false, nil
	}
	b, err := encodePlain(c.state.value)
	return b, err == nil, err
}

func (c *seam[T]) Known() ([]byte, bool, error) {
	if c.state == nil || !c.state.hasValue {
		return nil, false, nil
	}
	b, err := encodePlain(c.state.value)
	return b, err == nil, err
}

func (c *seam[T]) Stored() (string, bool) {
	s := c.state
	if s == nil || s.hasValue || s.loadErr != nil || s.stored() == "" {
		return "", false
	}
	return s.stored(), true
}

func (c *seam[T]) Sealed() string {
	if c.state == nil || c.state.pending {
		return ""
	}
	return c.state.stored()
}

func (c *seam[T]) LoadError() error {
	if c.state == nil {
		return nil
	}
	return c.state.loadErr
}

func (c *seam[T]) Reserve(av *types.AttributeValueMemberS) {
	c.update(func(s *state[T]) { s.reserved = av })
}

func (c *seam[T]) Opened(plaintext []byte) error {
	v, err := decodePlain[T](plaintext)
	if err != nil || c.state == nil {
		return err
	}
	// The new state and its value in one allocation, once per value read.
	o := &struct {
		s state[T]
		v T
	}{s: *c.state, v: v}
	o.s.value, o.s.hasValue, o.s.openErr = &o.v, true, nil
	c.state = &o.s
	return nil
}

func (c *seam[T]) OpenFailed(err error) {
	c.update(func(s *state[T]) {
		if s.pending && s.sealed == nil {
			// A plaintext loaded where only sealed values are accepted: it
			// must be neither used nor written back.
			s.value, s.hasValue, s.pending, s.loadErr = nil, false, false, err
			return
		}
		s.openErr = err
	})
}

func (c *seam[T]) Origin() string {
	if c.state == nil {
		return ""
	}
	return c.state.origin()
}

func (c *seam[T]) SetOrigin(origin string) {
	c.update(func(s *state[T]) { s.sealed = s.sealedWith(func(f *sealedForm) { f.origin = origin }) })
}

func (c *seam[T]) Beacon() (string, bool) {
	if c.state == nil || c.state.sealed == nil {
		return "", false
	}
	return c.state.sealed.beacon, c.state.sealed.hasBeacon
}

func (c *seam[T]) SetBeacon(digest string) {
	c.update(func(s *state[T]) {
		s.sealed = s.sealedWith(func(f *sealedForm) { f.beacon, f.hasBeacon = digest, true })
	})
}

// sealedWith returns a changed copy of the sealed form: forms are shared by
// copies of an Encrypted, like states.
func (s *state[T]) sealedWith(change func(*sealedForm)) *sealedForm {
	f := sealedForm{}
	if s.sealed != nil {
		f = *s.sealed
	}
	change(&f)
	return &f
}

// loadFailed is an Encrypted whose stored attribute could not be loaded;
// Value returns err, and the repository that read it reports it with the
// item and path.
func loadFailed[T any](err error) Encrypted[T] {
	return Encrypted[T]{state: &state[T]{loadErr: err}}
}
