"""--redact: no patient name or ID the peers sent is left in any file written, tokens are
stable under one key, and the tables still join; the Annex E classification; the Python
entry point."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.uid import UID
from typer.testing import CliRunner

import tshark_dicom
from tshark_dicom.cli import app
from tshark_dicom.redact import Redaction, attribute_kind, learn, redact_tables, redact_text
from tshark_dicom.schemas import TABLES

from .conftest import CAPTURES

runner = CliRunner()
QR = sorted(CAPTURES.glob("qr_*.pcapng"))
#: Attributes whose values name or identify a patient (what the test looks for).
PATIENT_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
                    "OtherPatientIDs", "OtherPatientNames", "IssuerOfPatientID", "StudyID",
                    "ReferringPhysicianName", "PatientAddress", "PatientTelephoneNumbers")
UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                "FailedSOPInstanceUIDList")


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _values(text: str) -> set[str]:
    """Each backslash-separated value, padding off, long enough to grep for safely."""
    out = set()
    for part in text.split("\\"):
        part = part.strip(" \x00")
        if len(part) >= 4:
            out.add(part)
    return out


@pytest.fixture(scope="module")
def clear(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, set[str]]]:
    """The qr_* captures analysed without --redact, and what the peers sent that identifies
    a patient (truth files, every identifier, every object written), AE titles, addresses
    and instance UIDs."""
    out = tmp_path_factory.mktemp("clear") / "out"
    code, _, stderr = invoke("analyze", *map(str, QR), "-o", str(out))
    assert code == 0, stderr
    found: dict[str, set[str]] = {"patient": set(), "uid": set(), "network": set()}
    for cap in QR:
        truth = json.loads(cap.with_name(cap.name.replace(".pcapng", ".truth.json"))
                           .read_text())
        qr = truth.get("qr", {})
        keys = [k for q in qr.get("queries", []) for k in q.get("request_keys", [])]
        keys += [k for r in qr.get("response_identifiers", []) for k in r.get("keys", [])]
        for k in keys:
            kind = "patient" if k.get("keyword") in PATIENT_KEYWORDS else \
                "uid" if k.get("keyword") in UID_KEYWORDS else None
            if kind and isinstance(k.get("value"), str):
                found[kind] |= _values(k["value"])
    report = tshark_dicom.load(out)
    qk = report.query_keys
    for kw, value in zip(qk["keyword"], qk["value"], strict=True):
        if kw in PATIENT_KEYWORDS and isinstance(value, str):
            found["patient"] |= _values(value)
        if kw in UID_KEYWORDS and isinstance(value, str):
            found["uid"] |= _values(value)
    for path in (out / "objects").rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for kw in PATIENT_KEYWORDS:
            if kw in ds:
                found["patient"] |= _values(str(ds.data_element(kw).value))
        for kw in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
            found["uid"] |= _values(str(ds.get(kw, "")))
    a = report.associations
    for col in ("calling_ae", "called_ae", "requestor_ip", "acceptor_ip"):
        found["network"] |= {v for v in a[col].dropna() if len(v) >= 4}
    assert len(found["patient"]) >= 8 and len(found["uid"]) >= 8, found
    return out, found


def _leaks(out: Path, values: set[str]) -> list[str]:
    """Every (file, value) where a value is in a file's bytes or, for Parquet, in its
    decoded cells (pages may be compressed)."""
    hits = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        data = path.read_bytes()
        text = data.decode("latin-1")
        if path.suffix == ".parquet":
            text += pq.read_table(path).to_pandas().astype(str).to_csv()
        if path.suffix == ".html":
            text += data.decode("utf-8", "replace").replace("&#x27;", "'") \
                .replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
        hits += [f"{path.relative_to(out)}: {v!r}" for v in values if v in text]
    return hits


def test_the_clear_run_does_hold_the_patient_data(clear: tuple[Path, dict[str, set[str]]]
                                                  ) -> None:
    out, found = clear
    assert _leaks(out, found["patient"])  # so the test below can fail
    assert _leaks(out, found["uid"]) and _leaks(out, found["network"])


def test_redact_leaves_no_patient_name_or_id_in_any_file(
        clear: tuple[Path, dict[str, set[str]]], tmp_path: Path) -> None:
    _, found = clear
    out = tmp_path / "out"
    code, stdout, stderr = invoke("analyze", *map(str, QR), "-o", str(out), "--redact",
                                  "--format", "both")
    assert code == 0, stderr
    assert _leaks(out, found["patient"]) == []
    assert not any(v in stdout for v in found["patient"])
    assert "patient data replaced by keyed hashes; no objects written" in stdout
    assert not (out / "objects").exists()
    assert _leaks(out, found["uid"]) and _leaks(out, found["network"])  # kept: not asked
    tables = tshark_dicom.load(out)
    assert tables.query_keys["value"].str.contains("redacted-").any()
    for args in ([str(out), "--redact"], [*map(str, QR), "--redact"]):
        code, stdout, stderr = invoke("diagnose", *args)
        assert code == 0, stderr
        assert "redacted-" in stdout and not any(v in stdout for v in found["patient"])


def test_redact_uids_and_network_leave_none_either(
        clear: tuple[Path, dict[str, set[str]]], tmp_path: Path) -> None:
    _, found = clear
    out = tmp_path / "out"
    code, stdout, stderr = invoke("analyze", *map(str, QR), "-o", str(out), "--redact-uids",
                                  "--redact-network", "--format", "both")
    assert code == 0, stderr
    assert _leaks(out, found["patient"] | found["uid"] | found["network"]) == []
    everything = found["patient"] | found["uid"] | found["network"]
    assert not any(v in stdout for v in everything)
    code, stdout, _ = invoke("diagnose", *map(str, QR), "--redact-uids", "--redact-network")
    assert code == 0 and not any(v in stdout for v in everything)
    report = tshark_dicom.load(out)
    uids = report.query_keys.loc[report.query_keys["vr"] == "UI", "value"].dropna()
    replaced = [u for v in uids for u in v.rstrip("\x00").split("\\") if u.startswith("2.25.")]
    assert replaced and all(UID(u).is_valid for u in replaced)
    stores = report.objects[report.objects["command"] == "C-STORE-RQ"]
    studies = stores["study_instance_uid"].dropna()
    assert len(studies) and studies.str.startswith("2.25.").all()
    assert stores["series_instance_uid"].dropna().str.startswith("2.25.").all()


def test_tokens_are_stable_under_one_key_and_the_tables_still_join(
        clear: tuple[Path, dict[str, set[str]]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    runs = {}
    monkeypatch.setenv("TSHARK_DICOM_REDACT_KEY", "from-the-environment")
    for name, extra in (("a", ["--redact-key", "k1"]), ("b", ["--redact-key", "k1"]),
                        ("c", ["--redact-key", "k2"]), ("env", [])):
        out = tmp_path / name
        code, _, stderr = invoke("analyze", *map(str, QR), "-o", str(out),
                                 "--redact-network", *extra)
        assert code == 0, stderr
        runs[name] = tshark_dicom.load(out)
    a, b, c = runs["a"], runs["b"], runs["c"]
    assert a.query_keys["value"].equals(b.query_keys["value"])
    assert not a.query_keys["value"].equals(c.query_keys["value"])
    assert json.loads((tmp_path / "env" / "run.json").read_text())["redaction"] == \
        Redaction.make("from-the-environment", network=True).settings()
    # one value, one token: in query_keys, in the queries' keys and in the findings
    ids = a.query_keys[(a.query_keys["keyword"] == "PatientID") & ~a.query_keys["empty"]
                       & (a.query_keys["source"] == "request")]  # a matching key
    token = ids["value"].iloc[0].rstrip(" ")
    assert re.fullmatch(r"redacted-[0-9a-f]{12}", token)
    assert a.queries["matching_keys"].map(lambda ks: f"PatientID={token}" in list(ks)).any()
    assert a.findings["summary"].str.contains(token, regex=False).any()
    # AE titles: the same token in associations, operations and the sentences
    ae = a.associations["calling_ae"].iloc[0]
    assert re.fullmatch(r"AE-[0-9a-f]{12}", ae)
    assert set(a.operations["scu_ae"].dropna()) <= set(a.associations["calling_ae"]) | \
        set(a.associations["called_ae"])
    assert a.findings["summary"].str.contains(ae, regex=False).any()


def test_resume_keeps_to_the_redaction_a_folder_was_written_with(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert invoke("analyze", str(QR[0]), "-o", str(out), "--redact", "--redact-key", "k")[0] \
        == 0
    for args, why in ((["--redact", "--redact-key", "other"], "with another --redact-key"),
                      ([], "with --redact"),
                      (["--redact-uids", "--redact-key", "k"], "with other --redact options")):
        code, _, stderr = invoke("analyze", str(QR[0]), "-o", str(out), "--resume", *args)
        assert code == 2 and stderr == (f"Error: --resume: {out} was written {why}; rerun "
                                        "with the same options and key, or without --resume "
                                        "to replace its results\n"), stderr
    code, stdout, stderr = invoke("analyze", *map(str, QR[:2]), "-o", str(out), "--resume",
                                  "--redact", "--redact-key", "k")
    assert code == 0 and "resumed: 1 capture(s) already done, 1 analysed now" in stdout


def test_python_entry_point(clear: tuple[Path, dict[str, set[str]]], tmp_path: Path) -> None:
    _, found = clear
    cap = CAPTURES / "qr_find_nomatch.pcapng"
    with pytest.raises(tshark_dicom.OptionsError, match="objects are not written"):
        tshark_dicom.analyze(cap, objects_dir=tmp_path / "objects", redact=True)
    report = tshark_dicom.analyze(cap, redact=Redaction.make("k"))
    report.write(tmp_path / "w", format="both")
    assert _leaks(tmp_path / "w", found["patient"]) == []
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "w").rglob("*")} == {0o600, 0o700}
    again = tshark_dicom.analyze(cap, redact=Redaction.make("k"))
    for t in TABLES:  # the same tokens (captures: elapsed time differs)
        if t != "captures":
            assert report.table(t).astype(str).equals(again.table(t).astype(str)), t


# -- the rules, on their own ----------------------------------------------------------------
@pytest.mark.parametrize(("keyword", "kind"), [
    ("PatientName", "value"), ("PatientID", "value"), ("PatientBirthDate", "value"),
    ("AccessionNumber", "value"), ("OtherPatientIDsSequence", "value"),
    ("ReferringPhysicianName", "value"), ("StudyDescription", "value"),
    ("StudyInstanceUID", "uid"), ("SOPInstanceUID", "uid"), ("RetrieveAETitle", "ae"),
    ("QueryRetrieveLevel", None), ("Modality", None), ("SOPClassUID", None),
    ("NumberOfStudyRelatedInstances", None)])
def test_what_counts_as_identifying(keyword: str, kind: str | None) -> None:
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    tag = tag_for_keyword(keyword)
    assert tag is not None
    assert attribute_kind(tag, dictionary_VR(tag)) == kind


def test_private_unknown_and_repeating_attributes_are_identifying() -> None:
    assert attribute_kind(0x00091001, "LO") == "value"  # private
    assert attribute_kind(0x00101234, "LO") == "value"  # not in the dictionary
    assert attribute_kind(0x60024000, "LT") == "value"  # Overlay Comments, group 6002
    assert attribute_kind(0x00100000, "UL") is None  # a group length


def test_tokens() -> None:
    r, same, other = Redaction.make("k"), Redaction.make(b"k"), Redaction.make("k2")
    assert r.token("Doe^John") == same.token("Doe^John") != other.token("Doe^John")
    assert re.fullmatch(r"redacted-[0-9a-f]{12}", r.token("Doe^John"))
    assert r.token(r.token("x")) == r.token("x")  # a token is left as it is
    assert len(r.ae("STORE-SCP")) <= 16 and r.ae("STORE-SCP") != r.token("STORE-SCP")
    uid = r.uid("1.2.3.4")
    assert UID(uid).is_valid and uid.startswith("2.25.") and len(uid) <= 64
    assert r.uid("1.2.840.10008.1.20.1.1") == "1.2.840.10008.1.20.1.1"  # defined by DICOM
    assert Redaction.make().key != Redaction.make().key  # random per run without a key
    assert repr(r) == "Redaction(uids=False, network=False)"  # the key is never shown


def test_text_keeps_words_that_merely_contain_a_value() -> None:
    qk = pd.DataFrame({"capture": ["c"] * 2, "tag": ["(0010,0020)", "(0010,0010)"],
                       "keyword": ["PatientID", "PatientName"], "vr": ["LO", "PN"],
                       "value": ["PAT1 ", "Doe^John\\Roe^Jane"]}).astype("string")
    r = Redaction.make("k")
    tokens = learn({"query_keys": qk}, r)
    assert set(tokens) >= {"PAT1", "Doe^John", "Roe^Jane"}
    text = "PatientID PAT1 and PAT12; 'Roe^Jane' asked"
    assert redact_text(text, tokens) == (f"PatientID {r.token('PAT1')} and PAT12; "
                                         f"'{r.token('Roe^Jane')}' asked")
    out = redact_tables({"query_keys": qk}, r)["query_keys"]
    assert out["value"].tolist() == [r.token("PAT1") + " ",
                                     f"{r.token('Doe^John')}\\{r.token('Roe^Jane')}"]
    assert qk["value"].iloc[0] == "PAT1 "  # the frame given is not changed


def test_a_key_inside_a_sequence_is_redacted_by_its_own_kind() -> None:
    """Sequence>Keyword items of matching_keys: the key's own attribute decides (a worklist
    query's Modality and station AE title stay, a date or a name inside the sequence is
    replaced), not the unknown name as a whole (which replaced every one of them)."""
    report = tshark_dicom.analyze(CAPTURES / "qr_worklist_wrong_station.pcapng",
                                  redact=Redaction.make("test-key"))
    keys = [list(k) for k in report.queries.sort_values("op_index")["matching_keys"]]
    sps = "ScheduledProcedureStepSequence>"
    assert [k[:2] for k in keys] == [[f"{sps}Modality=CT", f"{sps}ScheduledStationAETitle=CT01"],
                                     [f"{sps}Modality=MR", f"{sps}ScheduledStationAETitle=CT01"]]
    named = [f"{sps}ScheduledPerformingPhysicianName=Synth^Tech"]
    out = redact_tables({"queries": report.queries.assign(
        matching_keys=[named] * len(report.queries))}, Redaction.make("test-key"))["queries"]
    assert "Synth" not in str(list(out["matching_keys"].iloc[0]))
    assert list(out["matching_keys"].iloc[0])[0].startswith(
        f"{sps}ScheduledPerformingPhysicianName=")
