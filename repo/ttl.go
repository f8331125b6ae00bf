package repo

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

var timeType = reflect.TypeFor[time.Time]()

// checkTTL checks the field of `repo:"ttl"`. DynamoDB expires an item only
// when the attribute is a number of Unix seconds, so the field must be one
// the repository can always store that way.
func checkTTL(f *attr) error {
	if f.node != nil {
		return fmt.Errorf("repo: field %s: a `repo:\"ttl\"` field cannot be encrypted: DynamoDB must read the expiry time", f.goName)
	}
	isTime := f.typ == timeType || f.typ == reflect.PointerTo(timeType)
	if !isTime {
		if err := checkUnixSeconds(f); err != nil {
			return err
		}
	}
	return checkTTLOptions(f, isTime)
}

// checkUnixSeconds checks a ttl field that is not a time: an integer the
// repository can write as it is.
func checkUnixSeconds(f *attr) error {
	switch {
	case !isIntegerKind(f.typ.Kind()):
		return fmt.Errorf("repo: field %s: a `repo:\"ttl\"` field must be a time.Time, a *time.Time or an integer of Unix seconds, not %s", f.goName, f.typ)
	case f.typ.Implements(marshalerType) || reflect.PointerTo(f.typ).Implements(marshalerType):
		return fmt.Errorf("repo: field %s: a `repo:\"ttl\"` field cannot have its own MarshalDynamoDBAttributeValue: the repository stores it as Unix seconds", f.goName)
	}
	return nil
}

// checkTTLOptions refuses the `dynamodbav` options that would store the
// ttl field as something other than a number, or do nothing on it.
func checkTTLOptions(f *attr, isTime bool) error {
	_, opts, _ := strings.Cut(f.tag.Get("dynamodbav"), ",")
	for opt := range strings.SplitSeq(opts, ",") {
		switch {
		case opt == "string" || strings.HasSuffix(opt, "set"):
			return fmt.Errorf("repo: field %s: a `repo:\"ttl\"` field cannot take the `dynamodbav` option %q: DynamoDB expires items only by a number attribute", f.goName, opt)
		case opt == "unixtime" && !isTime:
			return fmt.Errorf("repo: field %s: the `dynamodbav` option \"unixtime\" is for time.Time fields; %s already holds Unix seconds", f.goName, f.typ)
		}
	}
	return nil
}

func isIntegerKind(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// stampTTL stores the ttl attribute of m, marshalled from item v, as
// DynamoDB needs it: a number of Unix seconds, or nothing for the zero
// time (attributevalue would write a time.Time as an RFC 3339 string, which
// DynamoDB never expires).
func (p *plan) stampTTL(m attrMap, v reflect.Value) {
	if p.ttl == nil {
		return
	}
	f, err := v.FieldByIndexErr(p.ttl.index)
	if err != nil {
		// Behind a nil embedded pointer: attributevalue wrote nothing either.
		delete(m, p.ttl.name)
		return
	}
	setTTL(m, p.ttl.name, f)
}

// stampUpdate does for an update's Set of the ttl attribute what stampTTL
// does for an item; w is the one-field struct the value was marshalled from.
func (p *plan) stampUpdate(st *updateStep, m attrMap, w reflect.Value) {
	if st.top == p.ttl && (st.kind == updateSet || st.kind == updateSetIfNotExists) {
		setTTL(m, p.ttl.name, w.Field(0))
	}
}

func setTTL(m attrMap, name string, f reflect.Value) {
	if secs, ok := unixSeconds(f); ok {
		m[name] = &types.AttributeValueMemberN{Value: secs}
		return
	}
	delete(m, name)
}

// unixSeconds is the value of a ttl field as Unix seconds; ok is false for
// the zero time, a nil pointer and 0, which mean "never expires".
func unixSeconds(f reflect.Value) (string, bool) {
	if f.Kind() == reflect.Pointer {
		if f.IsNil() {
			return "", false
		}
		f = f.Elem()
	}
	switch {
	case f.Type() == timeType:
		t := f.Interface().(time.Time)
		return strconv.FormatInt(t.Unix(), 10), !t.IsZero()
	case f.CanInt():
		return strconv.FormatInt(f.Int(), 10), f.Int() != 0
	}
	return strconv.FormatUint(f.Uint(), 10), f.Uint() != 0
}

// expired reports whether item m has passed its ttl at e; never for the
// zero expiry. As for DynamoDB, only a number counts as an expiry time.
func (p *plan) expired(m attrMap, e expiry) bool {
	if e.now.IsZero() {
		return false
	}
	n, ok := m[p.ttl.name].(*types.AttributeValueMemberN)
	if !ok {
		return false
	}
	secs, err := strconv.ParseFloat(n.Value, 64)
	return err == nil && secs <= float64(e.now.Unix())
}

// notExpired is the filter that keeps the items whose ttl has not passed at
// now, the same test as expired, so that counts agree with reads.
func (p *plan) notExpired(now time.Time) expression.ConditionBuilder {
	ttl := expression.Name(p.ttl.name)
	// The comparison comes last: some emulators fail on comparing a string
	// with a number rather than finding it false as DynamoDB does.
	return expression.Or(ttl.AttributeNotExists(), expression.Not(ttl.AttributeType(expression.Number)),
		ttl.GreaterThan(expression.Value(now.Unix())))
}

// reading applies a read's options (see readOptions) and SkipExpired: for
// an operation that takes filters it adds the filter that leaves expired
// items out, and for the others (Get, BatchGet) it returns the time to judge
// their items by (zero: keep every item).
func (r *Repo[T]) reading(op string, allowed readKnobs, opts []ReadOption) (ReadOptions, expiry, error) {
	o, err := readOptions(op, allowed, opts)
	if err != nil || !o.SkipExpired {
		return o, expiry{}, err
	}
	if r.plan.ttl == nil {
		return o, expiry{}, fmt.Errorf("repo %s: %s: SkipExpired: %s has no `repo:\"ttl\"` field", r.table, op, r.plan.typ)
	}
	if err := r.plan.checkIndexHasTTL(o.Index); err != nil {
		return o, expiry{}, fmt.Errorf("repo %s: %s: SkipExpired: %w", r.table, op, err)
	}
	now := time.Now()
	if allowed&knobFilter != 0 {
		o.Filters = append(o.Filters, r.plan.notExpired(now))
		return o, expiry{}, nil
	}
	return o, expiry{now}, nil
}

// expiry is the time a Get or BatchGet judges its items' ttl by; the zero
// expiry keeps every item.
type expiry struct{ now time.Time }

// readTTL is a projection's extra attributes when expired items are to be
// left out after the read: the ttl attribute, to tell which they are.
func (p *plan) readTTL(e expiry, extra []string) []string {
	if e.now.IsZero() {
		return extra
	}
	return append(extra, p.ttl.name)
}

// EnableTTL turns on DynamoDB's Time to Live for the table, on the attribute
// of T's `repo:"ttl"` field, so that DynamoDB deletes expired items (within
// a few days of expiry; SkipExpired hides them until then). A table that
// has it on for that attribute already is left as it is.
func (r *Repo[T]) EnableTTL(ctx context.Context) (err error) {
	ctx, sp := r.trace(ctx, "EnableTTL", 0)
	defer sp.end(&err)
	if r.plan.ttl == nil {
		return fmt.Errorf("repo %s: enable TTL: %s has no `repo:\"ttl\"` field", r.table, r.plan.typ)
	}
	db, err := r.db()
	if err != nil {
		return err
	}
	desc, err := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(r.table)})
	if err != nil {
		return fmt.Errorf("repo %s: describe TTL: %w", r.table, err)
	}
	if on, err := r.ttlOn(desc.TimeToLiveDescription); on || err != nil {
		return err
	}
	_, err = db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String(r.table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(r.plan.ttl.name), Enabled: aws.Bool(true)},
	})
	if err != nil {
		return fmt.Errorf("repo %s: enable TTL: %w", r.table, err)
	}
	return nil
}

// ttlOn reports whether d, the table's TTL, is on (or turning on) for the
// ttl attribute already; TTL on another attribute is an error, as DynamoDB
// takes only one.
func (r *Repo[T]) ttlOn(d *types.TimeToLiveDescription) (bool, error) {
	if d == nil || d.TimeToLiveStatus == "" || d.TimeToLiveStatus == types.TimeToLiveStatusDisabled {
		return false, nil
	}
	if on := aws.ToString(d.AttributeName); on != r.plan.ttl.name {
		return false, fmt.Errorf("repo %s: enable TTL: the table's TTL is %s on attribute %q, not %q", r.table, d.TimeToLiveStatus, on, r.plan.ttl.name)
	}
	return d.TimeToLiveStatus != types.TimeToLiveStatusDisabling, nil
}
