#!/usr/bin/env python3
"""The values the interoperability tests exchange with the Go library, and
the tool that seals them with dynoseal_format.py.

    interop_fixture.py catalogue                 the values, items and specs, nothing sealed
    interop_fixture.py seal KEY_ID               the catalogue sealed now under KEY_ID
    interop_fixture.py make-fixture OUT          a new checked-in fixture (needs ImportKeyMaterial: local-kms)
    interop_fixture.py rewrap FIXTURE KEY_ID     the fixture's version-1 values with their data keys
                                                 encrypted again under KEY_ID (for a KMS that cannot
                                                 import key material: moto)
    interop_fixture.py tamper < {"stored": [...]}
                                                 damaged copies of stored values, each with what a
                                                 reader must say: "malformed" or "invalid"

All print (or write) one JSON document:

    {"specs": {NAME: {"context": {...}, "context_from": {...}, "version": 1|2}},
     "items": [{"type": GO TYPE, "item": DYNAMODB JSON ITEM, "key": KEY ATTRIBUTES,
                "values": [{"location": [...], "path": ATTRIBUTE PATH, "spec": NAME,
                            "kind": "string"|"bytes"|"json", "value": ..., "plaintext_b64": ...,
                            "context": {...}, "version": 1|2, "binding_key": {...},
                            "stored": "ENC:...", "data_key_hex": ... (fixture only)}]}],
     "kms": {...} (fixture only)}

"location" finds the value in the item (attribute names and list indexes),
"path" is its attribute path for version 2 (docs/format.md); "binding_key"
is the key the version-2 value is bound to, possibly spelled differently from
the item's key (numbers are bound in canonical form). The Go types named
in "type" are in tests/integration/interop_test.go.

Regenerate the checked-in fixture on a fresh local-kms (see tests/interop/README.md):

    scripts/with-services.sh strict -- python3 tests/interop/interop_fixture.py \
        make-fixture tests/interop/testdata/python-fixture.json
"""

from __future__ import annotations

import base64
import copy
import datetime
import json
import os
import platform
import struct
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dynoseal_format as df  # noqa: E402

SPECS: dict[str, dict[str, Any]] = {
    "interop-plain": {"context": {}, "context_from": {}, "version": 1},
    "interop-ctx": {"context": {"purpose": "interop", "app": "dynoseal"}, "context_from": {}, "version": 1},
    "interop-tenant": {"context": {"purpose": "interop"}, "context_from": {"tenant": "tenant"}, "version": 1},
    "interop-v2": {"context": {"purpose": "binding"}, "context_from": {}, "version": 2},
}

LONG_TEXT = "".join(f"{i:05d} the quick brown fox jumps over the lazy dog \u2014 caf\u00e9 \u2713\n" for i in range(250))
ALL_BYTES = bytes(range(256)) + bytes(range(255, -1, -1))


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def catalogue() -> dict[str, Any]:
    """The items and values, unsealed."""
    item_key = {"pk": {"S": "INTEROP#1"}}
    tenant = "acme"

    def v(location: list[Any], spec: str, kind: str, value: Any, path: str | None = None) -> dict[str, Any]:
        return {"location": location, "path": path or location[0], "spec": spec, "kind": kind, "value": value}

    item_values = [
        v(["ascii"], "interop-plain", "string", "123-45-6789"),
        v(["utf8"], "interop-plain", "string", "Gr\u00fc\u00dfe aus K\u00f6ln, \u6771\u4eac, \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac, \U0001f510"),
        v(["empty"], "interop-plain", "string", ""),
        v(["long"], "interop-plain", "string", LONG_TEXT),
        v(["bytes"], "interop-plain", "bytes", _b64(ALL_BYTES)),
        v(["int64"], "interop-plain", "json", -9223372036854775808),
        v(["float"], "interop-plain", "json", -1.5e-07),
        v(["time"], "interop-plain", "json", "2024-02-29T12:34:56.123456789+05:30"),
        v(["time_utc"], "interop-plain", "json", "1999-12-31T23:59:59Z"),
        v(["card"], "interop-plain", "json", {"number": "4111 1111 1111 1111", "label": 'a<b&c> "quoted" \u00e9'}),
        v(["ctx"], "interop-ctx", "string", "sealed under a static context"),
        v(["by_tenant"], "interop-tenant", "string", "sealed under the tenant's context"),
        v(["v2"], "interop-v2", "string", "bound to its attribute and item"),
        v(["odd.name"], "interop-v2", "string", "an attribute name with a dot", path=df.path_name("odd.name")),
        v(["profile", "ssn"], "interop-v2", "string", "078-05-1120", path="profile.ssn"),
        v(["profile", "odd.name"], "interop-v2", "string", "a member name with a dot", path="profile" + df.path_name("odd.name")),
        v(["cards", 0, "number"], "interop-v2", "string", "4000 0000 0000 0002", path="cards[].number"),
        v(["cards", 1, "number"], "interop-v2", "string", "5555 5555 5555 4444", path="cards[].number"),
        v(["phones", "home"], "interop-v2", "string", "+44 20 7946 0000", path='phones["home"]'),
        v(["phones", 'w\u00f6rk "2"\t'], "interop-v2", "string", "+1 202 555 0100", path="phones[" + df.go_quote('w\u00f6rk "2"\t') + "]"),
        v(["pins", 0], "interop-v2", "json", 1234, path="pins[]"),
        v(["pins", 1], "interop-v2", "json", 9876, path="pins[]"),
    ]
    items = [
        {"type": "InteropItem", "item": {**item_key, "tenant": {"S": tenant}}, "key": item_key, "values": item_values},
    ]
    # Version 2 with a string hash key and a number range key. The first is
    # bound with its key spelled 4.2E1 while the item stores 42: both are 42E2.
    for seq, spelled in (("42", "4.2E1"), ("-7", "-7"), ("0", "0"), ("1000", "1000")):
        key = {"account": {"S": "ACC#1"}, "seq": {"N": seq}}
        val = v(["secret"], "interop-v2", "string", f"entry {seq}")
        val["binding_key"] = {"account": {"S": "ACC#1"}, "seq": {"N": spelled}}
        items.append({"type": "InteropEntry", "item": dict(key), "key": key, "values": [val]})
    # Version 2 with a fractional number range key, stored as Go writes it
    # and bound as spelled differently.
    for at, spelled in (("0.001", "1e-3"), ("-0.5", "-0.50"), ("1000000000000000000000000000000", "1E+30")):
        key = {"sensor": {"S": "S#1"}, "at": {"N": at}}
        val = v(["secret"], "interop-v2", "string", f"reading {at}")
        val["binding_key"] = {"sensor": {"S": "S#1"}, "at": {"N": spelled}}
        items.append({"type": "InteropReading", "item": dict(key), "key": key, "values": [val]})
    # Version 2 with a binary hash key.
    bkey = {"id": {"B": _b64(b"\x00\xffkey\x10")}}
    items.append({"type": "InteropBlob", "item": dict(bkey), "key": bkey, "values": [v(["secret"], "interop-v2", "string", "binary key")]})

    for it in items:
        for val in it["values"]:
            spec = SPECS[val["spec"]]
            ctx = dict(spec["context"])
            for ck, attr in spec["context_from"].items():
                ctx[ck] = it["item"][attr]["S"]
            val["context"] = ctx
            val["version"] = spec["version"]
            if spec["version"] == 2:
                val.setdefault("binding_key", it["key"])
            val["plaintext_b64"] = _b64(df.encode_plaintext(val["kind"], val["value"]))
    return {"specs": SPECS, "items": items}


def place(item: dict[str, Any], location: list[Any], stored: str) -> None:
    """Puts a stored string into a DynamoDB JSON item at location, making the
    maps and lists on the way."""
    node: Any = item
    for i, step in enumerate(location):
        last = i == len(location) - 1
        nxt = location[i + 1] if not last else None
        if isinstance(step, int):
            lst = node  # a Python list of attribute values
            while len(lst) <= step:
                lst.append(None)
            if last:
                lst[step] = {"S": stored}
                return
            if lst[step] is None:
                lst[step] = {"L": []} if isinstance(nxt, int) else {"M": {}}
            node = lst[step]["L"] if isinstance(nxt, int) else lst[step]["M"]
        else:
            if last:
                node[step] = {"S": stored}
                return
            if step not in node:
                node[step] = {"L": []} if isinstance(nxt, int) else {"M": {}}
            node = node[step]["L"] if isinstance(nxt, int) else node[step]["M"]


def seal_catalogue(kms: df.Kms, key_id: str, keep_data_keys: bool = False) -> dict[str, Any]:
    doc = catalogue()
    for it in doc["items"]:
        for val in it["values"]:
            data_key, encrypted_key = kms.generate_data_key(key_id, val["context"])
            plaintext = base64.b64decode(val["plaintext_b64"])
            val["stored"] = df.seal_with_data_key(data_key, encrypted_key, plaintext, val["version"], val["path"], val.get("binding_key"))
            if keep_data_keys:
                val["data_key_hex"] = data_key.hex()
            # Check the value opens through KMS before it is handed out.
            if df.open_value(kms, key_id, val["stored"], val["context"], val["path"], val.get("binding_key")) != plaintext:
                raise SystemExit(f"{val['location']}: sealed value does not open")
            place(it["item"], val["location"], val["stored"])
    return doc


def import_key(kms: df.Kms, material: bytes) -> dict[str, Any]:
    """A KMS key with the given key material (Origin EXTERNAL + ImportKeyMaterial)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    c = kms.client
    meta = c.create_key(Origin="EXTERNAL", Description="dynoseal interop fixture")["KeyMetadata"]
    params = c.get_parameters_for_import(KeyId=meta["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    public = serialization.load_der_public_key(params["PublicKey"])
    wrapped = public.encrypt(material, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    c.import_key_material(KeyId=meta["KeyId"], ImportToken=params["ImportToken"], EncryptedKeyMaterial=wrapped, ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    return meta


def make_fixture(out: str) -> None:
    import boto3
    import cryptography

    kms = df.Kms()
    material = os.urandom(32)
    meta = import_key(kms, material)
    doc = seal_catalogue(kms, meta["KeyId"], keep_data_keys=True)
    doc = {
        "about": (
            "Values sealed by tests/interop/dynoseal_format.py, an implementation of docs/format.md "
            "that shares no code with the Go library, for tests/integration/interop_test.go. "
            "The encrypted data keys are local-kms ciphertext blobs under a key of Origin EXTERNAL "
            "whose key material is kms.key_material_hex; a test recreates that key by importing it. "
            "Test keys only: the key material and each plaintext data key are recorded on purpose."
        ),
        "made_by": {
            "command": "scripts/with-services.sh strict -- python3 tests/interop/interop_fixture.py make-fixture " + out,
            "python": platform.python_version(),
            "boto3": boto3.__version__,
            "cryptography": cryptography.__version__,
            "date": datetime.date.today().isoformat(),
        },
        "kms": {
            "emulator": "local-kms (tests/cmd/localkms)",
            "key_id": meta["KeyId"],
            "key_arn": meta["Arn"],
            "origin": "EXTERNAL",
            "key_material_hex": material.hex(),
        },
        **doc,
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")


def rewrap(path: str, key_id: str) -> dict[str, Any]:
    """The fixture with each version-1 value's data key encrypted again under
    key_id (KMS Encrypt, same context); version byte, nonce, ciphertext and
    tag stay as checked in. Version-2 values are left out: their header,
    which holds the encrypted data key, is part of the GCM additional data."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    kms = df.Kms()
    out = {"specs": doc["specs"], "items": []}
    for it in doc["items"]:
        values = []
        item = copy.deepcopy(it["item"])
        for val in it["values"]:
            item.pop(val["location"][0], None)
        for val in it["values"]:
            if val["version"] != df.VERSION1:
                continue
            env = df.parse_stored(val["stored"])
            blob = kms.encrypt(key_id, bytes.fromhex(val["data_key_hex"]), val["context"])
            val = dict(val, stored=df.make_envelope(env.version, blob, env.nonce, env.sealed).to_stored())
            place(item, val["location"], val["stored"])
            values.append(val)
        if values:
            out["items"].append(dict(it, item=item, values=values))
    return out


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def tamper(stored: str) -> list[dict[str, str]]:
    """Damaged copies of a stored value. "malformed": docs/format.md's rules
    for the string or the envelope are broken, so it must be refused before
    any KMS call; "invalid": a well-formed envelope that must fail GCM."""
    env = df.parse_stored(stored)
    text = stored[len(df.PREFIX) :]
    raw = env.to_bytes()
    out: list[dict[str, str]] = []

    def add(name: str, variant: str, expect: str) -> None:
        out.append({"name": name, "stored": variant, "expect": expect})

    def wrap(b: bytes) -> str:
        return df.PREFIX + df.b64encode(b)

    if text.endswith("="):
        # The last character before the padding carries unused low bits;
        # setting one decodes (leniently) to the same bytes.
        i = len(text.rstrip("=")) - 1
        add("padding bits not zero", df.PREFIX + text[:i] + _B64[_B64.index(text[i]) | 1] + text[i + 1 :], "malformed")
        add("padding left out", df.PREFIX + text.rstrip("="), "malformed")
    add("line break", df.PREFIX + text[:64] + "\n" + text[64:], "malformed")
    if "+" in text or "/" in text:
        add("URL-safe alphabet", df.PREFIX + text.replace("+", "-").replace("/", "_"), "malformed")
    add("unknown version 3", wrap(bytes([3]) + raw[1:]), "malformed")
    add("data key length 0", wrap(raw[:1] + b"\0\0" + raw[3:]), "malformed")
    add("data key length past the end", wrap(raw[:1] + struct.pack(">H", len(raw)) + raw[3:]), "malformed")
    add("shorter than nonce and tag", wrap(env.header + env.nonce + env.sealed[: df.TAG_LEN - 1]), "malformed")
    if len(env.sealed) > df.TAG_LEN:
        i = len(raw) - df.TAG_LEN - 1  # the last ciphertext byte
        add("ciphertext bit flipped", wrap(raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1 :]), "invalid")
    add("tag bit flipped", wrap(raw[:-1] + bytes([raw[-1] ^ 0x80])), "invalid")
    other = df.VERSION2 if env.version == df.VERSION1 else df.VERSION1
    add(f"relabelled as version {other}", wrap(bytes([other]) + raw[1:]), "invalid")
    return out


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "catalogue" and len(argv) == 2:
        doc = catalogue()
    elif cmd == "seal" and len(argv) == 3:
        doc = seal_catalogue(df.Kms(), argv[2])
    elif cmd == "make-fixture" and len(argv) == 3:
        make_fixture(argv[2])
        return 0
    elif cmd == "tamper" and len(argv) == 2:
        doc = {"variants": [dict(v, source=i) for i, st in enumerate(json.load(sys.stdin)["stored"]) for v in tamper(st)]}
    elif cmd == "rewrap" and len(argv) == 4:
        doc = rewrap(argv[2], argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    json.dump(doc, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
