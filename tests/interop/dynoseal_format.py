#!/usr/bin/env python3
"""An independent implementation of dynoseal's stored format.

Written from docs/format.md (and the plaintext table of
docs/field-encryption.md) only, with boto3 for KMS and the `cryptography`
package for AES-256-GCM, so that the Go library can be checked against a
reader and writer it does not share code with.

A stored value is the DynamoDB string

    "ENC:" + base64(envelope)          (standard alphabet, padded, strict)

and the envelope is

    version (1 byte: 1 or 2) | n (uint16, big-endian, never 0)
    | encrypted data key (n bytes: CiphertextBlob of KMS GenerateDataKey AES_256)
    | nonce (12 bytes) | AES-256-GCM ciphertext + 16-byte tag

Version 1 uses no GCM additional data. Version 2 uses

    header (envelope bytes 0 .. 3+n) | uint32 len + attribute path
    | uint32 key count | per key attribute sorted by name (bytes):
      uint32 len + name, type byte (S, N, B), uint32 len + value

with N values in their canonical spelling (see canonical_number). The KMS
encryption context goes to GenerateDataKey and Decrypt only.

Library use:

    kms = Kms()                                   # boto3, AWS_ENDPOINT_URL_KMS
    stored = seal(kms, "alias/k", b"123-45-6789", context={"tenant": "acme"})
    plain = open_value(kms, "alias/k", stored, context={"tenant": "acme"})
    # version 2: also give the attribute path and the item's key attributes
    stored = seal(kms, "alias/k", b"x", version=2, attribute="ssn",
                  item_key={"pk": {"S": "USER#1"}})

Command line (JSON in on stdin, JSON out on stdout):

    dynoseal_format.py seal  < {"requests": [{"key_id", "kind", "value", "context", "version", "attribute", "key"}]}
    dynoseal_format.py open  < {"requests": [{"key_id", "stored", "context", "attribute", "key"}]}
    dynoseal_format.py selftest        # the worked example of docs/format.md, no KMS

Plaintext kinds (docs/format.md, "Plaintext bytes"): "string" is the UTF-8
bytes of value; "bytes" is value as base64 text, sealed as the decoded bytes;
"json" is any JSON value, sealed as its compact JSON text without HTML
escaping (how the Go library seals every other type: int64 as digits,
time.Time as an RFC 3339 string, structs as objects under their json names).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import struct
import sys
import unicodedata
from dataclasses import dataclass
from typing import Any, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "ENC:"
VERSION1 = 1
VERSION2 = 2
NONCE_LEN = 12
TAG_LEN = 16
DATA_KEY_LEN = 32


class FormatError(ValueError):
    """A stored value that is not a well-formed envelope."""


class OpenError(Exception):
    """A well-formed envelope that does not open (wrong key, context or binding)."""


# ---------------------------------------------------------------- base64


_B64_ALPHABET = re.compile(r"\A[A-Za-z0-9+/]*={0,2}\Z")


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def b64decode_strict(text: str) -> bytes:
    """Standard base64 with padding; no line breaks or other characters, and
    the unused bits of the last character must be zero, so that every byte
    string has exactly one accepted spelling."""
    if len(text) % 4 != 0 or not _B64_ALPHABET.match(text):
        raise FormatError("not strict standard base64 (alphabet, padding or line break)")
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as e:
        raise FormatError(f"not base64: {e}") from None
    if b64encode(raw) != text:
        raise FormatError("base64 padding bits are not zero")
    return raw


# ---------------------------------------------------------------- envelope


@dataclass(frozen=True)
class Envelope:
    version: int
    encrypted_key: bytes
    nonce: bytes
    sealed: bytes  # ciphertext followed by the 16-byte tag

    @property
    def header(self) -> bytes:
        """Bytes 0 .. 3+n: version, length, encrypted data key."""
        return bytes([self.version]) + struct.pack(">H", len(self.encrypted_key)) + self.encrypted_key

    def to_bytes(self) -> bytes:
        return self.header + self.nonce + self.sealed

    def to_stored(self) -> str:
        return PREFIX + b64encode(self.to_bytes())


def make_envelope(version: int, encrypted_key: bytes, nonce: bytes, sealed: bytes) -> Envelope:
    if version not in (VERSION1, VERSION2):
        raise FormatError(f"unknown version {version}")
    if not 0 < len(encrypted_key) <= 0xFFFF:
        raise FormatError(f"encrypted data key of {len(encrypted_key)} bytes does not fit")
    if len(nonce) != NONCE_LEN:
        raise FormatError(f"nonce of {len(nonce)} bytes")
    if len(sealed) < TAG_LEN:
        raise FormatError("ciphertext shorter than its tag")
    return Envelope(version, bytes(encrypted_key), bytes(nonce), bytes(sealed))


def is_encrypted(stored: str) -> bool:
    return isinstance(stored, str) and stored.startswith(PREFIX)


def parse_envelope(raw: bytes) -> Envelope:
    if len(raw) < 3:
        raise FormatError("envelope shorter than its header")
    version = raw[0]
    if version not in (VERSION1, VERSION2):
        raise FormatError(f"unknown envelope version {version}")
    (n,) = struct.unpack(">H", raw[1:3])
    if n == 0:
        raise FormatError("encrypted data key length is 0")
    if len(raw) < 3 + n + NONCE_LEN + TAG_LEN:
        raise FormatError(f"envelope of {len(raw)} bytes is too short for a {n}-byte data key")
    return Envelope(version, raw[3 : 3 + n], raw[3 + n : 15 + n], raw[15 + n :])


def parse_stored(stored: str) -> Envelope:
    if not is_encrypted(stored):
        raise FormatError(f"no {PREFIX!r} prefix")
    return parse_envelope(b64decode_strict(stored[len(PREFIX) :]))


# ---------------------------------------------------------------- version-2 additional data


_NUMBER = re.compile(r"\A([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\Z")


def canonical_number(text: str) -> str:
    """The canonical spelling of a DynamoDB number: an optional "-", the
    significant digits without leading or trailing zeros, "E", and the
    exponent e such that the value is 0.digits x 10^e. Zero is "0".

    42, 42.0, 042 and 4.2E1 are all 42E2; -0.5 is -5E0."""
    m = _NUMBER.match(text.strip())
    if not m or (m.group(2) == "" and not m.group(3)):
        raise FormatError(f"{text!r} is not a number")
    sign, whole, frac, exp = m.group(1), m.group(2), m.group(3) or "", m.group(4)
    digits = whole + frac
    point = len(whole) + (int(exp) if exp else 0)  # value = 0.digits x 10^point
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    stripped = stripped.rstrip("0")
    if not stripped:
        return "0"
    return ("-" if sign == "-" else "") + stripped + "E" + str(point)


def _u32(n: int) -> bytes:
    return struct.pack(">I", n)


def _lv(b: bytes) -> bytes:
    return _u32(len(b)) + b


def key_attribute_bytes(av: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """(type byte, value bytes) of a key attribute in DynamoDB JSON:
    {"S": text}, {"N": text} or {"B": base64 text or bytes}."""
    if len(av) != 1:
        raise FormatError(f"key attribute {av!r} is not one of S, N, B")
    ((typ, value),) = av.items()
    if typ == "S":
        return b"S", value.encode("utf-8")
    if typ == "N":
        return b"N", canonical_number(value).encode("ascii")
    if typ == "B":
        return b"B", value if isinstance(value, (bytes, bytearray)) else base64.b64decode(value, validate=True)
    raise FormatError(f"key attribute type {typ!r} is not S, N or B")


def v2_additional_data(header: bytes, attribute: str, item_key: Mapping[str, Mapping[str, Any]]) -> bytes:
    if not attribute:
        raise FormatError("version 2 needs the attribute path")
    if not item_key:
        raise FormatError("version 2 needs the item's key attributes")
    out = bytearray(header)
    out += _lv(attribute.encode("utf-8"))
    out += _u32(len(item_key))
    for name in sorted(item_key, key=lambda s: s.encode("utf-8")):
        typ, value = key_attribute_bytes(item_key[name])
        out += _lv(name.encode("utf-8")) + typ + _lv(value)
    return bytes(out)


def go_quote(s: str) -> str:
    """A Go-quoted string (strconv.Quote), as attribute paths use for names
    holding '.', '[', ']' or '"'."""
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}[ch])
        elif ch == " " or unicodedata.category(ch)[0] in "LMNPS":
            out.append(ch)
        elif c < 0x80:
            out.append(f"\\x{c:02x}")
        elif c < 0x10000:
            out.append(f"\\u{c:04x}")
        else:
            out.append(f"\\U{c:08x}")
    out.append('"')
    return "".join(out)


def path_name(name: str) -> str:
    """One attribute or map-member name as it appears in a path: as it is, or
    ["name"] (Go-quoted) when it holds '.', '[', ']' or '"'."""
    return "[" + go_quote(name) + "]" if any(c in name for c in '.[]"') else name


# ---------------------------------------------------------------- KMS


class Kms:
    """GenerateDataKey and Decrypt through boto3. The endpoint comes from
    AWS_ENDPOINT_URL_KMS when set, as for the AWS SDKs."""

    def __init__(self, client: Any = None):
        if client is None:
            import boto3

            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
            client = boto3.client("kms", region_name=region, endpoint_url=os.environ.get("AWS_ENDPOINT_URL_KMS") or None)
        self.client = client

    def generate_data_key(self, key_id: str, context: Mapping[str, str] | None) -> tuple[bytes, bytes]:
        args: dict[str, Any] = {"KeyId": key_id, "KeySpec": "AES_256"}
        if context:
            args["EncryptionContext"] = dict(context)
        out = self.client.generate_data_key(**args)
        return out["Plaintext"], out["CiphertextBlob"]

    def decrypt(self, key_id: str, blob: bytes, context: Mapping[str, str] | None) -> bytes:
        args: dict[str, Any] = {"KeyId": key_id, "CiphertextBlob": blob}
        if context:
            args["EncryptionContext"] = dict(context)
        try:
            return self.client.decrypt(**args)["Plaintext"]
        except self.client.exceptions.ClientError as e:
            raise OpenError(f"KMS Decrypt: {e.response.get('Error', {}).get('Code', e)}") from e

    def encrypt(self, key_id: str, plaintext: bytes, context: Mapping[str, str] | None) -> bytes:
        args: dict[str, Any] = {"KeyId": key_id, "Plaintext": plaintext}
        if context:
            args["EncryptionContext"] = dict(context)
        return self.client.encrypt(**args)["CiphertextBlob"]


# ---------------------------------------------------------------- seal and open


def seal_with_data_key(
    data_key: bytes,
    encrypted_key: bytes,
    plaintext: bytes,
    version: int = VERSION1,
    attribute: str | None = None,
    item_key: Mapping[str, Mapping[str, Any]] | None = None,
    nonce: bytes | None = None,
) -> str:
    if len(data_key) != DATA_KEY_LEN:
        raise FormatError(f"data key of {len(data_key)} bytes, want {DATA_KEY_LEN}")
    nonce = os.urandom(NONCE_LEN) if nonce is None else nonce
    # An envelope with a placeholder tag gives the header for the additional data.
    env = make_envelope(version, encrypted_key, nonce, bytes(TAG_LEN))
    aad = v2_additional_data(env.header, attribute or "", item_key or {}) if version == VERSION2 else None
    sealed = AESGCM(data_key).encrypt(nonce, plaintext, aad)
    return make_envelope(version, encrypted_key, nonce, sealed).to_stored()


def open_with_data_key(
    data_key: bytes,
    env: Envelope,
    attribute: str | None = None,
    item_key: Mapping[str, Mapping[str, Any]] | None = None,
) -> bytes:
    aad = v2_additional_data(env.header, attribute or "", item_key or {}) if env.version == VERSION2 else None
    try:
        return AESGCM(data_key).decrypt(env.nonce, env.sealed, aad)
    except InvalidTag:
        raise OpenError("GCM authentication failed") from None


def seal(
    kms: Kms,
    key_id: str,
    plaintext: bytes,
    context: Mapping[str, str] | None = None,
    version: int = VERSION1,
    attribute: str | None = None,
    item_key: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    data_key, encrypted_key = kms.generate_data_key(key_id, context)
    return seal_with_data_key(data_key, encrypted_key, plaintext, version, attribute, item_key)


def open_value(
    kms: Kms,
    key_id: str,
    stored: str,
    context: Mapping[str, str] | None = None,
    attribute: str | None = None,
    item_key: Mapping[str, Mapping[str, Any]] | None = None,
) -> bytes:
    """The plaintext of a stored value; the version byte decides how it is opened."""
    env = parse_stored(stored)
    data_key = kms.decrypt(key_id, env.encrypted_key, context)
    if len(data_key) != DATA_KEY_LEN:
        raise OpenError(f"KMS returned a data key of {len(data_key)} bytes")
    return open_with_data_key(data_key, env, attribute, item_key)


# ---------------------------------------------------------------- plaintext encodings


def encode_plaintext(kind: str, value: Any) -> bytes:
    if kind == "string":
        return value.encode("utf-8")
    if kind == "bytes":
        return base64.b64decode(value, validate=True)
    if kind == "json":
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    raise ValueError(f"unknown plaintext kind {kind!r}")


def plaintext_matches(kind: str, value: Any, plaintext: bytes) -> bool:
    """Whether plaintext stands for value: the same bytes for "string" and
    "bytes"; for "json" the same JSON value (numbers compared as numbers, so
    1.5e-07 and 1.5e-7 agree, and object members in any order)."""
    if kind in ("string", "bytes"):
        return plaintext == encode_plaintext(kind, value)
    if kind == "json":
        try:
            got = json.loads(plaintext.decode("utf-8"))
        except ValueError:
            return False
        return _same_json(got, value)
    raise ValueError(f"unknown plaintext kind {kind!r}")


def _same_json(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b and (not isinstance(a, float) or not isinstance(b, float) or str(a) == str(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


# ---------------------------------------------------------------- worked example (docs/format.md)


DOC_EXAMPLE = {
    "data_key": bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
    "encrypted_key": b"EXAMPLE-ENCRYPTED-DATA-KEY",
    "nonce": bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaab"),
    "plaintext": b"123-45-6789",
    "attribute": "ssn",
    "item_key": {"pk": {"S": "USER#123"}},
    "v1": "ENC:AQAaRVhBTVBMRS1FTkNSWVBURUQtREFUQS1LRVmgoaKjpKWmp6ipqqvXKk8Acf4viVVdvp9MlTGqssQkjo4SV+oEQtw=",
    "v2": "ENC:AgAaRVhBTVBMRS1FTkNSWVBURUQtREFUQS1LRVmgoaKjpKWmp6ipqqvXKk8Acf4viVVdvnveaSESpAH/BPIXkjo702Q=",
    "v2_aad": "02001a4558414d504c452d454e435259505445442d444154412d4b45590000000373736e0000000100000002706b53000000085553455223313233",
}


def selftest() -> list[str]:
    """Checks this implementation against the worked example and the rules
    of docs/format.md without KMS; returns what failed."""
    ex, failed = DOC_EXAMPLE, []

    def check(what: str, got: Any, want: Any) -> None:
        if got != want:
            failed.append(f"{what}: got {got!r}, want {want!r}")

    for version, name in ((VERSION1, "v1"), (VERSION2, "v2")):
        stored = seal_with_data_key(ex["data_key"], ex["encrypted_key"], ex["plaintext"], version, ex["attribute"], ex["item_key"], ex["nonce"])
        check(f"worked example {name}", stored, ex[name])
        env = parse_stored(ex[name])
        check(f"{name} decodes to 68 bytes", len(env.to_bytes()), 68)
        check(f"{name} opens", open_with_data_key(ex["data_key"], env, ex["attribute"], ex["item_key"]), ex["plaintext"])
    env = parse_stored(ex["v2"])
    check("v2 additional data", v2_additional_data(env.header, ex["attribute"], ex["item_key"]).hex(), ex["v2_aad"])
    for attribute, key in (("ssn2", ex["item_key"]), (ex["attribute"], {"pk": {"S": "USER#124"}}), (ex["attribute"], {"pk": {"N": "123"}})):
        try:
            open_with_data_key(ex["data_key"], env, attribute, key)
            failed.append(f"v2 opened under attribute {attribute} key {key}")
        except OpenError:
            pass
    # A version-2 value relabelled as version 1 must not open.
    relabelled = Envelope(VERSION1, env.encrypted_key, env.nonce, env.sealed)
    try:
        open_with_data_key(ex["data_key"], relabelled)
        failed.append("v2 value relabelled as v1 opened")
    except OpenError:
        pass
    for text, want in (("42", "42E2"), ("42.0", "42E2"), ("042", "42E2"), ("4.2E1", "42E2"), ("-0.5", "-5E0"), ("0", "0"), ("-0.000", "0"), ("1000", "1E4"), ("0.001", "1E-2"), ("-7", "-7E1")):
        check(f"canonical_number({text})", canonical_number(text), want)
    for name, want in (("ssn", "ssn"), ("odd.name", '["odd.name"]'), ('a"b', '["a\\"b"]')):
        check(f"path_name({name})", path_name(name), want)
    for bad in ("ENC:AQAaRVhB\nTVBM", "ENC:AQ==", "ENC:AR==", "ENC:", "AQAa"):
        try:
            parse_stored(bad)
            failed.append(f"accepted malformed {bad!r}")
        except FormatError:
            pass
    return failed


# ---------------------------------------------------------------- command line


def _key(req: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return req.get("key") or None


def _cli_seal(doc: Mapping[str, Any], kms: Kms) -> dict[str, Any]:
    results = []
    for req in doc["requests"]:
        plaintext = encode_plaintext(req["kind"], req["value"])
        stored = seal(kms, req["key_id"], plaintext, req.get("context"), int(req.get("version", VERSION1)), req.get("attribute"), _key(req))
        results.append({"id": req.get("id"), "stored": stored, "plaintext_b64": b64encode(plaintext)})
    return {"results": results}


def _cli_open(doc: Mapping[str, Any], kms: Kms) -> dict[str, Any]:
    results = []
    for req in doc["requests"]:
        out: dict[str, Any] = {"id": req.get("id")}
        try:
            out["version"] = parse_stored(req["stored"]).version
            plaintext = open_value(kms, req["key_id"], req["stored"], req.get("context"), req.get("attribute"), _key(req))
            out["plaintext_b64"] = b64encode(plaintext)
            if "expect" in req:
                out["match"] = plaintext_matches(req["expect"]["kind"], req["expect"]["value"], plaintext)
        except (FormatError, OpenError) as e:
            out["error"] = f"{type(e).__name__}: {e}"
        results.append(out)
    return {"results": results}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in ("seal", "open", "selftest"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "selftest":
        failed = selftest()
        for f in failed:
            print("FAIL", f)
        print("selftest:", "FAILED" if failed else "ok")
        return 1 if failed else 0
    doc = json.load(sys.stdin)
    out = (_cli_seal if argv[1] == "seal" else _cli_open)(doc, Kms())
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
