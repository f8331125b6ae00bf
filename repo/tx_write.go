package repo

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynoseal/dynoseal/internal/itemsize"
)

// TxPut is Put of item as an operation of [Transact]. It takes the options
// of Put (If, IfExists, IfNotExists, ReturnCurrentOnFailure) and checks
// and increases the item's version like Put.
func (r *Repo[T]) TxPut(item T, opts ...WriteOption) TxWrite {
	return TxWrite{tel: r.tel, prepare: func() (*txWriteOp, error) { return r.txPut(item, opts) }}
}

func (r *Repo[T]) txPut(item T, opts []WriteOption) (*txWriteOp, error) {
	o, err := writeOptions("TxPut", 0, opts)
	if err != nil {
		return nil, err
	}
	vc, err := r.putVersion("put", item, o)
	if err != nil {
		return nil, err
	}
	cond, err := r.condition("put", o, vc)
	if err != nil {
		return nil, err
	}
	stamp := func(_ int, m attrMap) error { stampVersion(m, vc); return nil }
	ps, sizes, err := r.reserveItems("put", []T{item}, stamp)
	if err != nil {
		return nil, err
	}
	p, err := r.txOp("put", r.keyOf(item), ps.items[0], o, vc)
	if err != nil {
		ps.s.release()
		return nil, err
	}
	p.seal, p.size = &ps, sizes[0]
	p.build = func() (types.TransactWriteItem, error) {
		if err := r.checkSealed("put", []T{item}, ps, sizes); err != nil {
			return types.TransactWriteItem{}, err
		}
		p.size = sizes[0]
		put := &types.Put{TableName: aws.String(r.table), Item: ps.items[0], ReturnValuesOnConditionCheckFailure: onFailure(o, vc)}
		cond.apply(&put.ConditionExpression, &put.ExpressionAttributeNames, &put.ExpressionAttributeValues)
		return types.TransactWriteItem{Put: put}, nil
	}
	return p, nil
}

// TxUpdate is Update of the item with key k as an operation of [Transact].
// It takes the options of Update but ReturnOld and ReturnNew (If,
// IfExists, IfNotExists, IfVersion, ReturnCurrentOnFailure).
func (r *Repo[T]) TxUpdate(k Key, u Update, opts ...WriteOption) TxWrite {
	return TxWrite{tel: r.tel, prepare: func() (*txWriteOp, error) { return r.txUpdate(k, u, opts) }}
}

func (r *Repo[T]) txUpdate(k Key, u Update, opts []WriteOption) (*txWriteOp, error) {
	o, err := writeOptions("TxUpdate", 0, opts)
	if err != nil {
		return nil, err
	}
	pu, err := r.prepareUpdate(k, u, o)
	if err != nil {
		return nil, err
	}
	p, err := r.txOp("update", k, pu.key, o, pu.vc)
	if err != nil {
		pu.seal.s.release()
		return nil, err
	}
	p.seal, p.size = &pu.seal, pu.size(false)
	p.build = func() (types.TransactWriteItem, error) {
		e, err := pu.expression()
		if err != nil {
			return types.TransactWriteItem{}, err
		}
		p.size = pu.size(true)
		return types.TransactWriteItem{Update: &types.Update{
			TableName: aws.String(r.table), Key: pu.key, UpdateExpression: e.Update(), ConditionExpression: e.Condition(),
			ExpressionAttributeNames: e.Names(), ExpressionAttributeValues: e.Values(), ReturnValuesOnConditionCheckFailure: onFailure(o, pu.vc),
		}}, nil
	}
	return p, nil
}

// size is what the update carries towards a transaction's 4 MB: the key
// and the values it sets, sealed values at their smallest until they are
// sealed.
func (pu *preparedUpdate) size(sealed bool) int {
	n := itemsize.Of(pu.key)
	if !sealed {
		n += pu.seal.s.pendingSize(0)
	}
	for _, st := range pu.steps {
		if st.av != nil {
			n += len(st.path) + itemsize.Value(st.av)
		}
	}
	return n
}

// TxDelete is Delete of the item with key k as an operation of [Transact].
// It takes the options of Delete (If, IfExists, IfVersion,
// ReturnCurrentOnFailure).
func (r *Repo[T]) TxDelete(k Key, opts ...WriteOption) TxWrite {
	return TxWrite{tel: r.tel, prepare: func() (*txWriteOp, error) { return r.txKeyOnly("delete", k, nil, opts) }}
}

// TxCheck makes [Transact] require cond of the item with key k, without
// writing it: if cond does not hold, the transaction is cancelled. The
// condition may not compare encrypted attributes (existence checks are
// fine). It also takes If, IfExists, IfNotExists, IfVersion and
// ReturnCurrentOnFailure.
func (r *Repo[T]) TxCheck(k Key, cond expression.ConditionBuilder, opts ...WriteOption) TxWrite {
	return TxWrite{tel: r.tel, prepare: func() (*txWriteOp, error) {
		return r.txKeyOnly("check", k, &cond, opts)
	}}
}

// txKeyOnly prepares a delete or a condition check: operations that carry
// only a key and a condition.
func (r *Repo[T]) txKeyOnly(op string, k Key, check *expression.ConditionBuilder, opts []WriteOption) (*txWriteOp, error) {
	if check != nil {
		opts = append([]WriteOption{If(*check)}, opts...)
	}
	o, err := writeOptions(map[string]string{"delete": "TxDelete", "check": "TxCheck"}[op], 0, opts)
	if err != nil {
		return nil, err
	}
	vc, err := r.optionVersion(op, o)
	if err != nil {
		return nil, err
	}
	cond, err := r.condition(op, o, vc)
	if err != nil {
		return nil, err
	}
	km, err := r.keyMap(k)
	if err != nil {
		return nil, err
	}
	p, err := r.txOp(op, k, km, o, vc)
	if err != nil {
		return nil, err
	}
	p.size = itemsize.Of(km)
	p.build = func() (types.TransactWriteItem, error) {
		return keyOnlyItem(op, r.table, km, cond, onFailure(o, vc)), nil
	}
	return p, nil
}

// keyOnlyItem is the request item of a delete or condition check.
func keyOnlyItem(op, table string, km attrMap, cond *writeCondition, ret types.ReturnValuesOnConditionCheckFailure) types.TransactWriteItem {
	if op == "delete" {
		d := &types.Delete{TableName: aws.String(table), Key: km, ReturnValuesOnConditionCheckFailure: ret}
		cond.apply(&d.ConditionExpression, &d.ExpressionAttributeNames, &d.ExpressionAttributeValues)
		return types.TransactWriteItem{Delete: d}
	}
	c := &types.ConditionCheck{TableName: aws.String(table), Key: km, ReturnValuesOnConditionCheckFailure: ret}
	cond.apply(&c.ConditionExpression, &c.ExpressionAttributeNames, &c.ExpressionAttributeValues)
	return types.TransactWriteItem{ConditionCheck: c}
}

// txOp starts the operation of item km: where it goes, and how its part in
// a cancelled transaction is explained.
func (r *Repo[T]) txOp(op string, k Key, km attrMap, o WriteOptions, vc *versionCheck) (*txWriteOp, error) {
	db, err := r.db()
	if err != nil {
		return nil, err
	}
	id, err := r.keyID(km)
	if err != nil {
		return nil, fmt.Errorf("repo %s: %s %s: %w", r.table, op, k, err)
	}
	p := &txWriteOp{op: op, table: r.table, key: k, id: r.table + "\x00" + id, db: db, enc: r.encryptor, wait: r.txLimits("Transact")}
	p.reason = func(ctx context.Context, c types.CancellationReason) TxReason {
		tr := TxReason{Code: aws.ToString(c.Code), Message: aws.ToString(c.Message), Op: op, Table: r.table, Key: k}
		if tr.Code == TxReasonConditionFailed {
			tr.VersionConflict = vc.conflict(c.Item)
			if o.ReturnCurrentOnFailure && len(c.Item) > 0 {
				tr.Current = r.returned(ctx, c.Item)
			}
		}
		return tr
	}
	return p, nil
}
