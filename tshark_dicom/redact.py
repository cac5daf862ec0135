"""Patient data out (``--redact``): keyed hashes in place of the values that identify a
patient, and on request of UIDs (``--redact-uids``) and of AE titles and IP addresses
(``--redact-network``), in every table; report.html, the summary and ``diagnose`` are
built from the tables, so they carry the same tokens.

Identifying: every attribute the Basic Application Level Confidentiality Profile lists
(PS3.15 Annex E, Table E.1-1, in `annex_e.py`: names, IDs, birth dates, accession
numbers, descriptions, dates...), private attributes and attributes pydicom's dictionary
does not know, wherever an identifier carries them (query keys, responses); the user
name of a user identity; error comments whole (free text from a peer, which may name
anyone). UIDs the profile replaces (action U, e.g. Study and SOP Instance UIDs) and every
SOP Instance UID column only with ``uids``; UIDs defined by the standard
(``1.2.840.10008.``) never.

A value becomes ``redacted-`` and 12 hex digits of HMAC-SHA256(key, value without its
padding): the same value gives the same token in every table and sentence of a run, and
in every run with the same key, so joins, counts and comparisons still work. A UID becomes
``2.25.<decimal>`` (a valid UID, PS3.5 B.2), an AE title ``AE-<12 hex>`` (16 characters at
most, as an AE title), an IP address ``ip-<12 hex>``. Sentences (findings, problems,
details) get the same token wherever they quote a known value (3 characters or more).

Kept: the capture file names and paths given (not from the traffic), SOP Class and
transfer syntax UIDs, status codes and texts, sizes, counts and times.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pydicom.datadict import keyword_for_tag

from .annex_e import BASIC_PROFILE, REPEATING
from .queries import INSIDE, other_readings

#: The environment variable ``--redact-key`` falls back on.
KEY_ENV = "TSHARK_DICOM_REDACT_KEY"
#: Shortest value searched for in sentences: shorter ones (a sex, an age) are replaced in
#: their own columns only, or every "M" in every sentence would go.
MIN_TEXT = 3
STANDARD_UID_ROOT = "1.2.840.10008."

#: Columns that hold one kind of value, per table.
USER_COLUMNS = {"associations": ("user_identity_username",)}
COMMENT_COLUMNS = {"messages": ("error_comment",), "operations": ("error_comment",)}
#: The exam's own identifiers, from an MPPS (PS3.15 E.1: Accession Number is removed).
EXAM_COLUMNS = {"procedure_steps": ("accession_number", "pps_id"),
                "objects": ("accession_number",)}
UID_COLUMNS = {"messages": ("sop_instance_uid",), "operations": ("sop_instance_uid",),
               "objects": ("sop_instance_uid", "study_instance_uid", "series_instance_uid"),
               "commitments": ("transaction_uid",),
               "procedure_steps": ("sop_instance_uid", "study_instance_uid")}
UID_LIST_COLUMNS = {"queries": ("failed_sop_instances",),
                    "commitments": ("failed_sop_instances",)}
AE_COLUMNS = {"associations": ("calling_ae", "called_ae"),
              "operations": ("scu_ae", "scp_ae", "move_destination"),
              "messages": ("move_destination", "move_originator_ae"),
              "queries": ("move_destination",), "commitments": ("scu_ae", "scp_ae"),
              "procedure_steps": ("scu_ae", "scp_ae", "station_ae")}
IP_COLUMNS = {"associations": ("requestor_ip", "acceptor_ip"),
              "connection_attempts": ("client_ip", "server_ip")}
#: The capture as the user named it: not from the traffic, and the key names files.
KEEP = frozenset({"capture", "path", "key"})

_TOKEN = re.compile(r"(redacted|AE|ip)-[0-9a-f]{12}")


@dataclass(frozen=True)
class Redaction:
    """What to replace and the key of the hashes (`make`)."""

    key: bytes = field(repr=False)
    uids: bool = False
    network: bool = False

    @classmethod
    def make(cls, key: str | bytes | None = None, *, uids: bool = False,
             network: bool = False) -> Redaction:
        """A redaction keyed by ``key``, else by ``$TSHARK_DICOM_REDACT_KEY``, else by a
        random key (tokens then differ from one run to the next)."""
        if key is None or key == "":
            key = os.environ.get(KEY_ENV) or secrets.token_bytes(32)
        return cls(key.encode() if isinstance(key, str) else bytes(key), uids, network)

    def _mac(self, kind: bytes, value: str) -> bytes:
        return hmac.new(self.key, kind + b"\0" + value.encode("utf-8", "surrogatepass"),
                        hashlib.sha256).digest()

    def token(self, value: str) -> str:
        return value if _TOKEN.fullmatch(value) else f"redacted-{self._mac(b'v', value)[:6].hex()}"

    def uid(self, value: str) -> str:
        if value.startswith(STANDARD_UID_ROOT):
            return value
        return f"2.25.{int.from_bytes(self._mac(b'uid', value)[:16], 'big')}"

    def ae(self, value: str) -> str:
        return value if _TOKEN.fullmatch(value) else f"AE-{self._mac(b'ae', value)[:6].hex()}"

    def ip(self, value: str) -> str:
        return value if _TOKEN.fullmatch(value) else f"ip-{self._mac(b'ip', value)[:6].hex()}"

    def settings(self) -> dict[str, Any]:
        """What run.json records: the options and a check value of the key (an HMAC of a
        fixed text: it tells whether two runs used the same key, and nothing of the key)."""
        check = hmac.new(self.key, b"tshark-dicom key check", hashlib.sha256).hexdigest()
        return {"uids": self.uids, "network": self.network, "key_check": check[:16]}


def attribute_kind(tag: int, vr: str | None) -> str | None:
    """``value`` for an attribute whose value identifies a patient (Annex E, private, or
    unknown to the dictionary), ``uid`` for a UID the profile replaces, ``ae`` for an AE
    title it lists (replaced with the network), else None."""
    if (tag >> 16) & 1:
        return "value"  # private (PS3.15 E.3.10: removed by the basic profile)
    listed = tag in BASIC_PROFILE or any(tag & mask == value for mask, value in REPEATING)
    if listed:
        return {"UI": "uid", "AE": "ae"}.get(vr or "", "value")
    if tag & 0xFFFF and not keyword_for_tag(tag):
        return "value"  # not in pydicom's dictionary: unknown, so not known to be harmless
    return None


class _Known:
    """Every original value of a run's tables and its token, for the sentences."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}

    def add(self, original: str | None, token: str, shortest: int = MIN_TEXT) -> None:
        if original and len(original) >= shortest and original != token:
            self.tokens.setdefault(original, token)

    def pattern(self) -> re.Pattern[str] | None:
        if not self.tokens:
            return None
        alternatives = "|".join(re.escape(t) for t in sorted(self.tokens, key=len,
                                                             reverse=True))
        return re.compile(f"(?<![0-9A-Za-z])(?:{alternatives})(?![0-9A-Za-z])")


def _core(value: str) -> str:
    return value.rstrip(" \x00")


def _multi(value: str, replace: Callable[[str], str], known: _Known,
           charset: str | None = None) -> str:
    """Each of the backslash-separated values replaced, padding kept (the padding is
    evidence, e.g. for the trailing-space diagnosis). ``charset``: the Specific Character
    Set the value was read in (query_keys), whose other readings of its bytes a sentence
    may quote (queries.other_readings): they get the same token."""
    core = _core(value)
    if not core:
        return value
    parts = []
    for part in core.split("\\"):
        token = replace(part) if part else part
        for text in (part, part.strip(), *other_readings(part, charset)):
            known.add(text, token)
        parts.append(token)
    whole = "\\".join(parts)
    for text in (core, *other_readings(core, charset)):
        known.add(text, whole)
    return whole + value[len(core):]


def _map(series: pd.Series, replace: Callable[[str], str], known: _Known,
         shortest: int = MIN_TEXT) -> pd.Series:
    """A string column with every value replaced (nulls stay null)."""
    cache: dict[str, str] = {}

    def one(value: object) -> object:
        if not isinstance(value, str) or not value:
            return value
        if value not in cache:
            core = _core(value)
            cache[value] = replace(core) + value[len(core):] if core else value
            known.add(core, cache[value], shortest)
        return cache[value]

    return series.map(one, na_action="ignore").astype(series.dtype)


def redactor(r: Redaction) -> Callable[[dict[str, pd.DataFrame]], dict[str, pd.DataFrame]]:
    """redact_tables for a capture whose tables come a batch of rows at a time
    (store.PartWriter): the values learnt from earlier batches are replaced in the
    sentences of later ones too."""
    known = _Known()
    return lambda tables: redact_tables(tables, r, known)


def redact_tables(tables: dict[str, pd.DataFrame], r: Redaction,
                  known: _Known | None = None) -> dict[str, pd.DataFrame]:
    """The same tables with identifying values replaced (see the module docstring); the
    frames given are not changed. Tables of one capture or of many: the tokens do not
    depend on which. ``known``: values learnt before (`redactor`)."""
    out = {name: df.copy() for name, df in tables.items()}
    known = known if known is not None else _Known()
    done = _structured(out, r, known)
    pattern = known.pattern()
    if pattern is not None:
        for name, df in out.items():
            for col in df.columns:
                if col in KEEP or col in done[name]:
                    continue
                if pd.api.types.is_string_dtype(df[col].dtype) and df[col].dtype != object:
                    df[col] = df[col].map(lambda v: redact_text(v, known.tokens, pattern),
                                          na_action="ignore").astype(df[col].dtype)
    return out


def learn(tables: dict[str, pd.DataFrame], r: Redaction) -> dict[str, str]:
    """original -> token, for every identifying value the tables hold (what
    `redact_text` replaces in free text)."""
    known = _Known()
    _structured({name: df.copy() for name, df in tables.items()}, r, known)
    return dict(known.tokens)


def redact_text(text: str, tokens: dict[str, str],
                pattern: re.Pattern[str] | None = None) -> str:
    """Free text with every known value (`learn`) replaced by its token, where it stands
    as a whole word (not inside a longer name or number)."""
    if pattern is None:
        known = _Known()
        known.tokens = tokens
        pattern = known.pattern()
        if pattern is None:
            return text
    return pattern.sub(lambda m: tokens[m[0]], text)


def _structured(out: dict[str, pd.DataFrame], r: Redaction, known: _Known
                ) -> dict[str, set[str]]:
    """Replace, in place, the columns that hold one kind of value; the names of the
    columns done, per table."""
    done: dict[str, set[str]] = {name: set() for name in out}

    def column(table: str, col: str, replace: Callable[[str], str], shortest: int) -> None:
        df = out.get(table)
        if df is not None and col in df.columns:
            df[col] = _map(df[col], replace, known, shortest)
            done[table].add(col)

    def listed(table: str, col: str, each: Callable[[object], object]) -> None:
        df = out.get(table)
        if df is not None and col in df.columns:
            df[col] = df[col].map(each)
            done[table].add(col)

    # network first: an AE title a query key also carries reads as the same AE token
    for spec, replace, shortest in ((AE_COLUMNS if r.network else {}, r.ae, 1),
                                    (IP_COLUMNS if r.network else {}, r.ip, 1),
                                    (USER_COLUMNS, r.token, 1), (COMMENT_COLUMNS, r.token, 1),
                                    (EXAM_COLUMNS, r.token, 1),
                                    (UID_COLUMNS if r.uids else {}, r.uid, MIN_TEXT)):
        for table, cols in spec.items():
            for col in cols:
                column(table, col, replace, shortest)
    if "query_keys" in out and "value" in out["query_keys"].columns:
        _query_keys(out["query_keys"], r, known)
        done["query_keys"].add("value")
    listed("queries", "matching_keys", lambda v: _matching(v, r, known))
    if r.uids:
        for table, cols in UID_LIST_COLUMNS.items():
            for col in cols:
                listed(table, col, lambda v: _list(v, r.uid, known))
    return done


def _query_keys(df: pd.DataFrame, r: Redaction, known: _Known) -> None:
    values = df["value"].tolist()
    # an identifier's rows are together, its Specific Character Set (0008,0005) first
    names = [c for c in IDENTIFIER_COLUMNS if c in df.columns]
    idents = list(zip(*(df[c].tolist() for c in names), strict=True)) if names else \
        [()] * len(df)
    current: tuple[Any, ...] | None = None
    charset: str | None = None
    for i, (tag, vr, value, ident) in enumerate(zip(df["tag"].tolist(), df["vr"].tolist(),
                                                    values, idents, strict=True)):
        if ident != current:
            current, charset = ident, None
        if not isinstance(value, str) or not value:
            continue
        if tag == "(0008,0005)":
            charset = _core(value) or None
        replace = _replacer(attribute_kind(_tag(tag), vr if isinstance(vr, str) else None), r)
        if replace is not None:
            values[i] = _multi(value, replace, known, charset)
    df["value"] = pd.Series(values, index=df.index, dtype=object).astype(df["value"].dtype)


#: The columns of query_keys that say which identifier a row is of.
IDENTIFIER_COLUMNS = ("capture", "assoc_id", "op_index", "source", "response_number")


def _replacer(kind: str | None, r: Redaction) -> Callable[[str], str] | None:
    if kind == "value":
        return r.token
    if kind == "uid" and r.uids:
        return r.uid
    if kind == "ae" and r.network:
        return r.ae
    return None


def _tag(text: object) -> int:
    """``(0010,0010)`` -> 0x00100010 (0: not a tag, treated as unknown)."""
    m = re.fullmatch(r"\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)", str(text))
    return int(m[1] + m[2], 16) if m else 0x00090000  # an odd group: redacted


def _items(value: object) -> list[Any] | None:
    """A list cell (a list, or a numpy array as read from Parquet) as a list; else None."""
    if isinstance(value, list | tuple):
        return list(value)
    tolist = getattr(value, "tolist", None)
    return list(tolist()) if callable(tolist) else None


def _list(value: object, replace: Callable[[str], str], known: _Known) -> object:
    items = _items(value)
    if items is None:
        return value
    return [_multi(v, replace, known) if isinstance(v, str) else v for v in items]


def _matching(value: object, r: Redaction, known: _Known) -> object:
    """``Keyword=value`` items of the queries table, the value replaced as in query_keys."""
    items = _items(value)
    if items is None:
        return value
    out = []
    for item in items:
        name, sep, text = str(item).partition("=")
        tag = _keyword_tag(name.rpartition(INSIDE)[2])  # Sequence>Keyword: the key's own kind
        replace = _replacer(attribute_kind(tag, _vr(tag)), r) if sep and \
            text != "(sequence)" else None
        if replace is not None:
            text = _multi(text, replace, known)
        out.append(f"{name}{sep}{text}")
    return out


def _keyword_tag(name: str) -> int:
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(name)
    return int(tag) if tag is not None else _tag(name)


def _vr(tag: int) -> str | None:
    from pydicom.datadict import dictionary_VR

    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None
