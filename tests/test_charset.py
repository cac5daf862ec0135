"""Query identifiers in their character sets: every text value read in the Specific
Character Set (0008,0005) its identifier declares (answers too), and a C-FIND whose bytes
and declaration disagree diagnosed as `character-set`, saying how they disagree.

On the real capture (dcmtk dcmqrscp, fixture qr_find_charset; the live-peer suite makes it
afresh and runs `check_charset` on it), and on hand-made identifiers."""

from __future__ import annotations

import json
import struct
from typing import Any

import pandas as pd
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from tshark_dicom.queries import QueryRecord, decode_identifier, diagnose_no_match
from tshark_dicom.redact import Redaction, redact_tables
from tshark_dicom.schemas import frame

from .conftest import CAPTURES

FIXTURE = "qr_find_charset"
#: what the diagnosis detail says for each kind of disagreement (the generator's truth
#: names the kind it planted)
SAYS = {"undeclared": "declares no Specific Character Set (0008,0005)",
        "utf-8-declared-otherwise": "but its bytes are UTF-8 for",
        "invalid": "its bytes are not text in the Specific Character Set"}


def check_charset(truth: dict[str, Any], report: Any) -> None:
    """The capture's queries against what the generator planted (truth: qr.charset)."""
    cs = truth["qr"]["charset"]
    queries = report.queries.set_index(["assoc_id", "op_index"])
    keys = report.query_keys
    names = keys[(keys.keyword == "PatientName")]
    for want_q, answer, kind, label in zip(truth["qr"]["queries"], cs["answers"], cs["kinds"],
                                           cs["labels"], strict=True):
        aid, op = want_q["assoc_index"], want_q["op_index"]
        assert (answer["assoc_index"], answer["op_index"]) == (aid, op)
        got = queries.loc[(aid, op)]
        where = (label, aid, op)
        mine = names[(names.assoc_id == aid) & (names.op_index == op)]
        # the request's PatientName, read in its declared character set
        sent = next(k["value"] for k in want_q["request_keys"] if k["keyword"] == "PatientName")
        assert mine.loc[mine.source == "request", "value"].tolist() == [sent], where
        # each answer's, read in the answer's own character set
        assert mine.loc[mine.source == "response", "value"].tolist() == \
            answer["patient_names"], where
        assert got["match_count"] == len(answer["patient_names"]), where
        if kind is None:
            assert pd.isna(got["diagnosis"]), where
        else:
            assert got["diagnosis"] == "character-set", where
            assert SAYS[kind] in got["diagnosis_detail"], (where, got["diagnosis_detail"])
    planted = sum(k is not None for k in cs["kinds"])
    found = report.findings[report.findings.code == "query-no-match"]
    assert len(found) == planted
    assert all("likely reason: character-set" in s for s in found["summary"])
    # identifier-character-set: one per association and sender, the first one named
    unaccounted = report.findings[report.findings.code == "identifier-character-set"]
    assert len(unaccounted) == len(cs["unaccounted"])
    messages = report.messages.set_index(["assoc_id", "msg_index"])
    for want, (_, row) in zip(cs["unaccounted"], unaccounted.sort_values("assoc_id").iterrows(),
                              strict=True):
        assoc = report.associations.set_index("assoc_id").loc[want["assoc_index"]]
        who = assoc["calling_ae" if want["sender"] == "requestor" else "called_ae"]
        count, noun = want["count"], ("request" if want["sender"] == "requestor"
                                      else "identifier")
        assert row["assoc_id"] == want["assoc_index"]
        assert row["summary"].startswith(f"{who} "), row["summary"]
        assert f" {count} " in row["summary"] and noun in row["summary"], row["summary"]
        assert SAYS[want["kind"]] in row["summary"], row["summary"]
        msg = messages.loc[(want["assoc_index"], int(row["msg_index"]))]
        assert msg["command"] == ("C-FIND-RQ" if want["response_number"] == 0
                                  else "C-FIND-RSP"), row


def test_the_capture_reads_every_name_in_its_character_set(analysed: Any) -> None:
    truth = json.loads((CAPTURES / f"{FIXTURE}.truth.json").read_text())
    report, _ = analysed(CAPTURES / truth["capture"])
    check_charset(truth, report)
    # the answers' own character sets were read: Cyrillic, and Japanese in ISO 2022 escapes
    values = set(report.query_keys["value"].dropna())
    assert "Иванов^Иван " in values
    assert "Yamada^Tarou=山田^太郎=やまだ^たろう" in values


#: what object-character-set says of each kind the generator planted (store_charset)
OBJECT_SAYS = {"undeclared": " has bytes beyond ASCII and the data set declares no Specific "
                             "Character Set",
               "utf-8-declared-otherwise": "'s bytes are UTF-8, but the data set declares",
               "invalid": "'s bytes are not text in the Specific Character Set the data set "
                          "declares"}


def check_object_charset(truth: dict[str, Any], report: Any) -> None:
    """Stored objects whose text and character set disagree (truth: object_charset, what
    the generator planted): one object-character-set finding for the sender, counting them
    and naming the first by its Message ID and UID, in words for its kind; the value not
    quoted. Each object's study columns read, whatever its text's character set."""
    planted = [p for p in truth["object_charset"] if p["kind"] is not None]
    found = report.findings[report.findings.code == "object-character-set"]
    assert len(found) == 1, found.summary.tolist()
    f = found.iloc[0]
    first = planted[0]
    objs = report.objects.set_index("sop_instance_uid")
    msg = report.messages.set_index(["assoc_id", "msg_index"]).loc[
        (f.assoc_id, objs.loc[first["sop_instance_uid"], "msg_index"])]
    assert f.severity == "warning" and f.msg_index == msg.name[1]
    assert f.summary.startswith(f"{truth['associations'][0]['calling_ae']} sent "
                                f"{len(planted)} objects to ")
    assert f"the first, C-STORE-RQ {msg.message_id} ({first['sop_instance_uid']}): " \
        f"{first['attribute']}{OBJECT_SAYS[first['kind']]}" in f.summary, f.summary
    # no value is quoted, neither as meant nor as misread
    assert "müller" not in f.summary.lower() and "mã¼ller" not in f.summary.lower()
    for p in truth["object_charset"]:
        assert objs.loc[p["sop_instance_uid"], "modality"] == "CT"


def test_stored_objects_text_against_their_character_set(analysed: Any) -> None:
    truth = json.loads((CAPTURES / "store_charset.truth.json").read_text())
    report, _ = analysed(CAPTURES / truth["capture"])
    check_object_charset(truth, report)


@pytest.mark.parametrize(("charset", "keyword", "raw", "kind"), [
    (b"ISO_IR 100", "PatientName", "Müller^Hans".encode(), "utf-8-declared-otherwise"),
    (None, "ReferringPhysicianName", "Müller^Hans".encode("latin-1"), "undeclared"),
    (b"ISO_IR 192", "StudyDescription", "ärztlich".encode("latin-1"), "invalid"),
    (b"ISO_IR 192", "PatientName", "Schröder^Eva".encode(), None),
    (b"ISO_IR 144", "InstitutionName", "Клиника".encode("iso8859_5"), None),
    # the other names, places and free text a site writes in its own language
    (b"ISO_IR 100", "OperatorsName", "Jäger^Anna".encode(), "utf-8-declared-otherwise"),
    (b"ISO_IR 100", "PerformingPhysicianName", "Bäcker^Jo".encode(), "utf-8-declared-otherwise"),
    (None, "ProtocolName", "Schädel nativ".encode("latin-1"), "undeclared"),
    (None, "InstitutionalDepartmentName", "Radiologie Süd".encode("latin-1"), "undeclared"),
    (None, "StationName", "CT-SÜD".encode("latin-1"), "undeclared"),
    (b"ISO_IR 192", "InstitutionAddress", "Hauptstraße 1".encode("latin-1"), "invalid"),
    (b"ISO_IR 192", "OtherPatientNames", "Müller^Hans".encode(), None),
    (b"ISO_IR 100", "PatientComments", "Gerät defekt".encode("latin-1"), None),
    (b"\\ISO 2022 IR 87", "PatientName", "Yamada^Tarou=山田^太郎".encode("iso2022_jp"), None),
])
def test_an_objects_text_is_read_in_its_character_set(charset: bytes | None, keyword: str,
                                                       raw: bytes, kind: str | None) -> None:
    """objects.head_identity keeps the text beyond ASCII, queries.ObjectTextTally reads it
    in the data set's own character set."""
    from tshark_dicom.datasethead import CHECKED_TEXT, head_identity
    from tshark_dicom.queries import ObjectTextTally
    from tshark_dicom.records import ObjectRecord

    tag, vr = next((t, v) for t, (k, v) in CHECKED_TEXT.items() if k == keyword)
    ds = Dataset()
    if charset is not None:
        ds.add(DataElement(0x00080005, "CS", charset))
    ds.add(DataElement(tag, vr, raw))
    ds.Modality = "MR"
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_dataset(buf, ds)
    identity = head_identity(buf.getvalue(), "1.2.840.10008.1.2.1")
    assert identity.columns == {"modality": "MR"}
    assert [t[:2] for t in identity.texts] == [(keyword, vr)]
    tally = ObjectTextTally()
    tally.add(ObjectRecord(3, "C-STORE-RQ", None, "1.2.3", None, False, 0, "", True, None,
                           None, "requestor", charset=identity.charset, texts=identity.texts))
    if kind is None:
        assert not tally.count
    else:
        (obj, name, _, problem), = tally.first.values()
        assert (obj.msg_index, name, problem.kind, tally.count["requestor"]) == \
            (3, keyword, kind, 1)


def _identifier(name: bytes, charset: bytes | None, vr: str = "PN",
                tag: int = 0x00100010) -> bytes:
    ds = Dataset()
    if charset is not None:
        ds.add(DataElement(0x00080005, "CS", charset))
    ds.add(DataElement(0x00080052, "CS", b"STUDY "))
    ds.add(DataElement(tag, vr, name))
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    return fp.getvalue()


def _diagnosis(name: bytes, charset: bytes | None, **kw: Any) -> tuple[str, str, str]:
    keys = decode_identifier(_identifier(name, charset, **kw), "1.2.840.10008.1.2.1",
                             "request", 0)
    q = QueryRecord(0, "C-FIND", None, "STUDY", None, [], [], 0, "0x0000", "Success",
                    keys=keys)
    value = next(k.value for k in keys if k.tag != "(0008,0005)" and k.tag != "(0008,0052)")
    return (*diagnose_no_match(q, [q]), value or "")


@pytest.mark.parametrize(("name", "charset", "reason", "says", "value"), [
    # bytes beyond ASCII with no character set declared
    ("Müller*".encode("latin-1"), None, "character-set", SAYS["undeclared"], "Müller*"),
    ("Müller*".encode(), None, "character-set", "read as UTF-8, they are 'Müller*'",
     "MÃ¼ller*"),
    # UTF-8 under a single-byte set's name
    ("Müller*".encode(), b"ISO_IR 100", "character-set", SAYS["utf-8-declared-otherwise"],
     "MÃ¼ller*"),
    ("Иванов*".encode(), b"ISO_IR 144", "character-set", SAYS["utf-8-declared-otherwise"],
     None),
    # bytes that are no text in the declared set
    ("Müller*".encode("latin-1"), b"ISO_IR 192", "character-set", SAYS["invalid"], None),
    ("Müller*".encode("latin-1"), b"ISO_IR 999", "character-set", "(ISO_IR 999)", None),
    # each declared set read as such: nothing to say
    ("Müller*".encode("latin-1"), b"ISO_IR 100", "unknown", "", "Müller*"),
    ("Иванов*".encode("iso8859_5"), b"ISO_IR 144", "unknown", "", "Иванов*"),
    ("Ελληνικό*".encode("iso8859_7"), b"ISO_IR 126", "unknown", "", "Ελληνικό*"),
    ("Müller*".encode(), b"ISO_IR 192", "unknown", "", "Müller*"),
    ("王*".encode("gb18030"), b"GB18030", "unknown", "", "王*"),
    (b"\x1b$B;3ED\x1b(B^\x1b$BB@O:", b"\\ISO 2022 IR 87", "unknown", "", "山田^太郎"),
    (b"Doe*", b"ISO_IR 100", "unknown", "", "Doe*"),
])
def test_a_name_is_read_in_its_character_set(name: bytes, charset: bytes | None, reason: str,
                                             says: str, value: str | None) -> None:
    got_reason, detail, got_value = _diagnosis(name, charset)
    assert got_reason == reason
    assert says in detail
    if value is not None:
        assert got_value.rstrip(" ") == value


def test_a_code_string_holds_ascii_only_whatever_the_character_set() -> None:
    # Modality (0008,0060) CS "MÜ", Explicit VR Little Endian, after the level
    data = _identifier(b"", b"ISO_IR 100", tag=0x00080054, vr="AE") + \
        struct.pack("<HH2sH", 0x0008, 0x0060, b"CS", 2) + "MÜ".encode("latin-1")
    keys = decode_identifier(data, "1.2.840.10008.1.2.1", "request", 0)
    q = QueryRecord(0, "C-FIND", None, "STUDY", None, [], [], 0, "0x0000", "Success",
                    keys=keys)
    reason, detail = diagnose_no_match(q, [q])
    assert reason == "character-set" and "a CS value holds ASCII only" in detail


def test_the_first_key_with_its_bytes_wrong_is_named_before_other_reasons() -> None:
    # a trailing space would be a reason too: the character set is the likelier one
    reason, detail, _ = _diagnosis("Müller  ".encode("latin-1"), None)
    assert reason == "character-set" and "PatientName" in detail


@pytest.mark.parametrize(("name", "charset"), [
    ("Müller*".encode(), b"ISO_IR 100"),  # UTF-8 sent as Latin-1
    ("Иванов*".encode(), b"ISO_IR 144"),  # UTF-8 sent as Cyrillic
    ("Müller*".encode(), None),  # UTF-8 declared as nothing
    ("Müller*".encode("latin-1"), b"ISO_IR 192"),  # Latin-1 sent as UTF-8
])
def test_redaction_replaces_the_name_as_the_sender_meant_it_too(name: bytes,
                                                                 charset: bytes | None) -> None:
    """The diagnosis quotes the bytes' other reading, which no table holds: redaction knows
    it from the value and its character set, and gives it the value's token."""
    keys = decode_identifier(_identifier(name, charset), "1.2.840.10008.1.2.1", "request", 0)
    q = QueryRecord(0, "C-FIND", None, "STUDY", None, [], [], 0, "0x0000", "Success",
                    keys=keys)
    reason, detail = diagnose_no_match(q, [q])
    assert reason == "character-set"
    meant = name.decode("utf-8", "replace").rstrip("*") if charset != b"ISO_IR 192" else \
        name.decode("latin-1").rstrip("*")
    assert meant in detail
    rows = [{"capture": "c", "assoc_id": 0, "op_index": 0, "source": "request",
             "response_number": 0, "tag": k.tag, "keyword": k.keyword, "vr": k.vr,
             "value": k.value, "empty": k.empty} for k in keys]
    tables = {"query_keys": frame("query_keys", rows),
              "queries": frame("queries", [{"capture": "c", "assoc_id": 0, "op_index": 0,
                                            "command": "C-FIND", "diagnosis": reason,
                                            "diagnosis_detail": detail}])}
    out = redact_tables(tables, Redaction.make("k"))
    text = out["queries"]["diagnosis_detail"].iloc[0]
    assert meant not in text and "redacted-" in text, text
    assert not any(meant in str(v) for v in out["query_keys"]["value"])
