"""User Identity negotiation (PS3.7 D.3.3.7) against what real peers sent: dcmtk storescu's
user name and passcode, pynetdicom's JSON Web Token and bare user name, in clear and over TLS
(fixtures/captures/user_identity, whose SCP recorded each identity it received). A credential
that crossed the network in clear is a ``credentials-in-clear`` warning; the credential itself
is written nowhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from typer.testing import CliRunner

from tshark_dicom.cli import app
from tshark_dicom.records import SECRET_IDENTITIES, USER_IDENTITY_TYPES

from .conftest import CAPTURES

TRUTH = json.loads((CAPTURES / "user_identity.truth.json").read_text())
CAPTURE = CAPTURES / TRUTH["capture"]


def test_identities_are_read_as_the_scp_received_them(analysed: Any) -> None:
    """Type, its name and the user name of each association (never for a token), over TLS
    as in clear."""
    report, _ = analysed(CAPTURE)
    a = report.associations.set_index("assoc_id")
    want = TRUTH["user_identity"]["associations"]
    assert len(a) == len(want) == 7
    for w in want:
        row = a.loc[w["assoc_index"]]
        assert row["user_identity_type"] == w["type"]
        assert row["user_identity_text"] == USER_IDENTITY_TYPES[w["type"]]
        got = row["user_identity_username"]
        assert (None if pd.isna(got) else got) == w["username"]
        assert bool(row["tls"]) == w["tls"]


def test_credentials_in_clear_are_a_warning_each(analysed: Any) -> None:
    """A passcode or a token in clear: one warning naming the calling AE and what was sent;
    the same passcode over TLS, a user name alone, and one with an empty passcode (dcmtk's
    -epw) say nothing."""
    report, _ = analysed(CAPTURE)
    f = report.findings[report.findings["code"] == "credentials-in-clear"]
    want = [w for w in TRUTH["user_identity"]["associations"] if w["in_clear"]]
    assert sorted(f["assoc_id"]) == [w["assoc_index"] for w in want]
    calling = report.associations.set_index("assoc_id")["calling_ae"]
    for w in want:
        row = f[f["assoc_id"] == w["assoc_index"]].iloc[0]
        assert row["severity"] == "warning"
        text = row["summary"]
        assert text.startswith(f"{calling.loc[w['assoc_index']]} sent "
                               f"{SECRET_IDENTITIES[w['type']]} (User Identity")
        assert "without TLS" in text and "DICOM over TLS" in text
        assert w["username"] is None or w["username"] not in text


def test_no_output_holds_a_credential(tmp_path: Path) -> None:
    """Every file of a run (tables in both formats, the page, the summary, the objects), and
    with --redact not the user names either."""
    secrets = [TRUTH["user_identity"]["passcode"], TRUTH["user_identity"]["jwt"]]
    names = [w["username"] for w in TRUTH["user_identity"]["associations"] if w["username"]]
    for redact in (False, True):
        out = tmp_path / f"out{int(redact)}"
        args = ["analyze", str(CAPTURE), "-o", str(out), "--format", "both", "-q"]
        result = CliRunner().invoke(app, args + (["--redact"] if redact else []),
                                    env={"TSHARK_DICOM_REDACT_KEY": "k" * 32})
        assert result.exit_code == 0, result.output
        files = [p for p in out.rglob("*") if p.is_file()]
        assert len(files) > 10
        blob = b"".join(p.read_bytes() for p in files)
        for secret in secrets:
            assert secret.encode() not in blob
        for name in names:
            assert (name.encode() in blob) is not redact, (name, redact)


def test_an_identity_response_that_never_came(analysed: Any) -> None:
    """The requestor asked for a User Identity response and the A-ASSOCIATE-AC had none:
    dcmtk's storescu then gave up without a request, an error that the unreleased
    connection's finding points to; pynetdicom went on, a note. A response that came, or
    none asked for, says nothing."""
    report, _ = analysed(CAPTURE)
    findings = report.findings
    f = findings[findings["code"] == "user-identity-not-confirmed"]
    want = {w["assoc_index"]: w for w in TRUTH["user_identity"]["associations"]
            if w["confirmed"] is False}
    assert sorted(f["assoc_id"]) == sorted(want) and len(want) == 2
    for i in want:
        row = f[f["assoc_id"] == i].iloc[0]
        messages = TRUTH["associations"][i]["messages"]
        assert "asked TLS-SCP to confirm its user identity" in row["summary"]
        if messages:
            assert row["severity"] == "note" and "went on without it" in row["summary"]
        else:
            assert row["severity"] == "error" and "then sent no request" in row["summary"]
            ending = findings[(findings["assoc_id"] == i)
                              & (findings["code"] == "association-not-released")]
            assert "see the user-identity-not-confirmed finding" in ending.iloc[0]["summary"]
