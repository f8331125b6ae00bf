package enc

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Mode limits which KMS operations a spec may use.
type Mode int

const (
	// ReadWrite seals on write and opens on read. It needs kms:GenerateDataKey and kms:Decrypt.
	ReadWrite Mode = iota
	// WriteOnly seals on write and leaves loaded values sealed. It needs kms:GenerateDataKey only.
	WriteOnly
	// ReadOnly opens on read and refuses to seal new values. It needs kms:Decrypt only.
	ReadOnly
)

func (m Mode) String() string {
	switch m {
	case ReadWrite:
		return "ReadWrite"
	case WriteOnly:
		return "WriteOnly"
	case ReadOnly:
		return "ReadOnly"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// CanEncrypt reports whether the mode may seal new values.
func (m Mode) CanEncrypt() bool { return m == ReadWrite || m == WriteOnly }

// CanDecrypt reports whether the mode may open stored values.
func (m Mode) CanDecrypt() bool { return m == ReadWrite || m == ReadOnly }

// Spec says how one kind of field is encrypted.
type Spec struct {
	// KeyID is a KMS key ID, key ARN, alias name ("alias/...") or alias ARN. Required.
	KeyID string
	// Mode defaults to ReadWrite.
	Mode Mode
	// Region of the KMS key; empty means the region of the AWS configuration.
	Region string
	// Context is the KMS encryption context sent with every GenerateDataKey
	// and Decrypt. Decrypting with a different context fails.
	Context map[string]string
	// ContextFrom adds encryption context taken from the item being written
	// or read: context key -> name of a top-level scalar attribute, e.g.
	// {"tenant": "tenant_id"} gives each tenant its own context, and so its
	// own data keys. Its keys may not repeat keys of Context. Outside a
	// repository, pass the values in SealRequest.ItemContext and
	// OpenRequest.ItemContext.
	ContextFrom map[string]string
	// Version of the envelope that new values are sealed in: 0 or 1 for
	// version 1 (the default, byte-compatible with pydynox), 2 for version 2,
	// which binds each value to its attribute and its item's primary key (see
	// [Binding]). Values of either version are opened under any setting, so
	// a spec can move to version 2 while version-1 values remain.
	Version byte
	// PreviousKeyIDs are keys that values stored earlier may be sealed
	// under, e.g. before a rotation: opening accepts them (with one Decrypt
	// per distinct data key, as for KeyID), sealing never uses them. A value
	// under any other key fails with ErrKeyNotAllowed. The provider must
	// implement [KeyRing]; with kmsx, an alias here or in KeyID also needs
	// kms:DescribeKey.
	PreviousKeyIDs []string
	// RequireSealed makes a stored value that is not sealed (a plaintext
	// string, another type, NULL) fail to load with ErrUnsealed instead of
	// loading as the value. Turn it on once every stored value is sealed.
	// Repositories enforce it when they load an item; this package never
	// takes an unsealed value as plaintext (Open refuses it as malformed).
	RequireSealed bool
	// MinVersion makes envelopes of an older version fail to open: 2 after
	// a move to version 2, so that a version-1 value copied into the table
	// does not open. 0 accepts every version.
	MinVersion byte
}

// Validate reports a spec that can never work.
func (s Spec) Validate() error {
	if strings.TrimSpace(s.KeyID) == "" {
		return fmt.Errorf("spec has no KeyID")
	}
	if s.Mode < ReadWrite || s.Mode > ReadOnly {
		return fmt.Errorf("spec for key %s has unknown mode %d", s.KeyID, int(s.Mode))
	}
	if s.Version > Version2 {
		return fmt.Errorf("spec for key %s has unknown envelope version %d", s.KeyID, s.Version)
	}
	if err := s.validateLifecycle(); err != nil {
		return err
	}
	for k, attr := range s.ContextFrom {
		switch {
		case k == "":
			return fmt.Errorf("spec for key %s: ContextFrom has an empty context key", s.KeyID)
		case attr == "":
			return fmt.Errorf("spec for key %s: ContextFrom[%q] names no attribute", s.KeyID, k)
		}
		if _, dup := s.Context[k]; dup {
			return fmt.Errorf("spec for key %s: context key %q is both static (Context) and from the item (ContextFrom)", s.KeyID, k)
		}
	}
	return nil
}

// sealVersion is the envelope version new values are sealed in.
func (s Spec) sealVersion() byte {
	if s.Version == Version2 {
		return Version2
	}
	return Version1
}

// clone copies the maps so a registered spec cannot be changed through the
// caller's maps, nor the caller's through a looked-up spec.
func (s Spec) clone() Spec {
	s.Context = maps.Clone(s.Context)
	s.ContextFrom = maps.Clone(s.ContextFrom)
	s.PreviousKeyIDs = slices.Clone(s.PreviousKeyIDs)
	return s
}

// Registry maps spec names, as used in `enc:"name"` struct tags, to specs.
// It is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	specs   map[string]Spec
	beacons map[string]Beacon
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{specs: map[string]Spec{}, beacons: map[string]Beacon{}}
}

// Default is the registry used by the package-level Register functions and,
// unless told otherwise, by repositories.
var Default = NewRegistry()

// Register adds a spec under name. A name can be registered once.
func (r *Registry) Register(name string, s Spec) error {
	if name == "" {
		return fmt.Errorf("dynoseal: register: empty spec name")
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("dynoseal: register %q: %w", name, err)
	}
	s = s.clone()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.specs[name]; dup {
		return fmt.Errorf("dynoseal: register %q: already registered", name)
	}
	r.specs[name] = s
	return nil
}

// MustRegister is Register that panics on error, for package initialisation.
func (r *Registry) MustRegister(name string, s Spec) {
	if err := r.Register(name, s); err != nil {
		panic(err)
	}
}

// Lookup returns the spec registered under name.
func (r *Registry) Lookup(name string) (Spec, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.specs[name]
	return s.clone(), ok
}

// RegisterBeacon adds a beacon under name, as used in `beacon:"name"`
// struct tags. A name can be registered once; beacons and specs have names
// of their own.
func (r *Registry) RegisterBeacon(name string, b Beacon) error {
	if name == "" {
		return fmt.Errorf("dynoseal: register beacon: empty name")
	}
	if err := b.Validate(); err != nil {
		return fmt.Errorf("dynoseal: register beacon %q: %w", name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.beacons[name]; dup {
		return fmt.Errorf("dynoseal: register beacon %q: already registered", name)
	}
	r.beacons[name] = b
	return nil
}

// MustRegisterBeacon is RegisterBeacon that panics on error.
func (r *Registry) MustRegisterBeacon(name string, b Beacon) {
	if err := r.RegisterBeacon(name, b); err != nil {
		panic(err)
	}
}

// LookupBeacon returns the beacon registered under name.
func (r *Registry) LookupBeacon(name string) (Beacon, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	b, ok := r.beacons[name]
	return b, ok
}

// RegisterBeacon adds a beacon to [Default].
func RegisterBeacon(name string, b Beacon) error { return Default.RegisterBeacon(name, b) }

// MustRegisterBeacon adds a beacon to [Default] and panics on error.
func MustRegisterBeacon(name string, b Beacon) { Default.MustRegisterBeacon(name, b) }

// Register adds a spec to [Default].
func Register(name string, s Spec) error { return Default.Register(name, s) }

// MustRegister adds a spec to [Default] and panics on error.
func MustRegister(name string, s Spec) { Default.MustRegister(name, s) }

// validateLifecycle checks the fields that say which stored values are
// still accepted.
func (s Spec) validateLifecycle() error {
	if s.MinVersion > Version2 {
		return fmt.Errorf("spec for key %s has unknown MinVersion %d", s.KeyID, s.MinVersion)
	}
	if s.MinVersion > s.sealVersion() {
		return fmt.Errorf("spec for key %s: MinVersion %d is above the version it seals, %d, so its own values would not open", s.KeyID, s.MinVersion, s.sealVersion())
	}
	for i, id := range s.PreviousKeyIDs {
		switch {
		case strings.TrimSpace(id) == "":
			return fmt.Errorf("spec for key %s: PreviousKeyIDs[%d] is empty", s.KeyID, i)
		case id == s.KeyID || slices.Index(s.PreviousKeyIDs, id) < i:
			return fmt.Errorf("spec for key %s: PreviousKeyIDs names %s twice or as the current key", s.KeyID, id)
		}
	}
	return nil
}
