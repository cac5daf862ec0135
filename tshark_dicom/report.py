"""Report: the tables, written as Parquet/CSV, and a short human summary."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import OptionsError
from .tables import SCHEMAS, SEVERITIES, TABLES, frame

FORMATS = ("parquet", "csv", "both")


@dataclass
class Report:
    """What `tshark_dicom.analyze` returns: one DataFrame per table (SPEC.md)."""

    associations: pd.DataFrame = field(default_factory=lambda: frame("associations", []))
    presentation_contexts: pd.DataFrame = field(
        default_factory=lambda: frame("presentation_contexts", []))
    messages: pd.DataFrame = field(default_factory=lambda: frame("messages", []))
    objects: pd.DataFrame = field(default_factory=lambda: frame("objects", []))
    findings: pd.DataFrame = field(default_factory=lambda: frame("findings", []))
    operations: pd.DataFrame = field(default_factory=lambda: frame("operations", []))
    queries: pd.DataFrame = field(default_factory=lambda: frame("queries", []))
    query_keys: pd.DataFrame = field(default_factory=lambda: frame("query_keys", []))
    connection_attempts: pd.DataFrame = field(
        default_factory=lambda: frame("connection_attempts", []))
    throughput: pd.DataFrame = field(default_factory=lambda: frame("throughput", []))
    captures: list[str] = field(default_factory=list)

    @classmethod
    def concat(cls, parts: list[dict[str, pd.DataFrame]], captures: list[str]) -> Report:
        tables = {}
        for t in TABLES:
            frames = [p[t] for p in parts if len(p[t])]
            tables[t] = (pd.concat(frames, ignore_index=True) if frames else frame(t, []))
        return cls(**tables, captures=captures)

    def table(self, name: str) -> pd.DataFrame:
        if name not in SCHEMAS:
            raise KeyError(name)
        df: pd.DataFrame = getattr(self, name)
        return df

    def write(self, out: str | os.PathLike[str], format: str = "parquet") -> list[Path]:
        """Write every table into ``out`` as ``<table>.parquet`` and/or ``<table>.csv``.

        Each file is written under a temporary name and renamed into place, so a file
        with a table's name is always a whole table.
        """
        if format not in FORMATS:
            raise OptionsError(f"unknown format {format!r}: choose parquet, csv or both")
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name in TABLES:
            df = self.table(name)
            if format in ("parquet", "both"):
                written.append(_atomic(out_dir / f"{name}.parquet", lambda p, d=df:
                                       _write_parquet(d, p)))
            if format in ("csv", "both"):
                written.append(_atomic(out_dir / f"{name}.csv", lambda p, d=df, name=name:
                                       _csv(name, d).to_csv(p, index=False)))
        return written

    def diagnose(self) -> str:
        """The findings grouped by association, most severe first, in plain sentences, a
        C-MOVE with its callbacks and sub-operations beneath it (`tshark-dicom diagnose`)."""
        from .diagnose import render

        return render(self)

    def to_html(self, title: str = "tshark-dicom report") -> str:
        """The whole report as one self-contained HTML page."""
        from .htmlreport import render

        return render(self, title)

    def summary(self) -> str:
        """A few lines a person reads first: what happened, and what to look at."""
        a, m, o, f = self.associations, self.messages, self.objects, self.findings
        results = a["result"].value_counts().to_dict() if len(a) else {}
        parts = [f"{n} {r}" for r, n in sorted(results.items())]
        lines = [
            f"{len(self.captures)} capture(s): {len(a)} associations"
            + (f" ({', '.join(parts)})" if parts else ""),
            f"{len(m)} DIMSE messages"
            + (_counts(m["command"]) if len(m) else ""),
            f"{len(o)} data sets: {int(o['complete'].sum()) if len(o) else 0} complete, "
            f"{int(o['path'].notna().sum()) if len(o) else 0} written as Part-10 files",
            _operations_line(self.operations),
            "findings: " + ", ".join(_plural(int((f["severity"] == s).sum()), s)
                                     for s in SEVERITIES),
        ]
        rank = {s: i for i, s in enumerate(SEVERITIES)}
        serious = f[f["severity"].isin(["error", "warning"])]
        worst = serious.assign(_r=serious["severity"].map(rank)).sort_values(
            ["_r", "capture", "frame"], kind="stable").head(8)
        many = len(self.captures) > 1
        for row in worst.itertuples():
            where = f"{Path(str(row.capture)).name}: " if many else ""
            lines.append(f"  {row.severity}: {where}[{row.code}] {row.summary}")
        if len(serious) > len(worst):
            lines.append("  ... (see findings table)")
        notes = f[f["code"] == "no-dicom"]
        for row in notes.itertuples():
            lines.append(f"  note: {row.summary}")
        return "\n".join(lines)


def _operations_line(ops: pd.DataFrame) -> str:
    """How many operations, how many were slow and on whom, and the slowest one."""
    line = _plural(len(ops), "operation")
    slow = ops[ops["bottleneck"].notna()]
    if not len(slow):
        return line + ", none slow"
    who = {"scu": "the SCU", "scp": "the SCP", "network": "the network"}
    counts = slow["bottleneck"].value_counts()
    line += ", slow: " + ", ".join(f"{n} waiting on {who.get(str(b), b)}"
                                   for b, n in counts.items())
    worst = slow.sort_values("total_ms", ascending=False, na_position="last").iloc[0]
    return (line + f"; slowest: {worst['command']} {_ms_text(worst['total_ms'])} "
            f"({worst['bottleneck_detail']})")


def _ms_text(ms: object) -> str:
    if not isinstance(ms, float) or pd.isna(ms):
        return "unfinished"
    return f"{ms:,.0f} ms" if ms < 10_000 else f"{ms / 1000:,.1f} s"


def load(out: str | os.PathLike[str]) -> Report:
    """A run written by `Report.write` (or ``tshark-dicom analyze -o OUT``), read back: each
    table from its Parquet file, else its CSV, with the schema's dtypes; a table the
    folder lacks is empty."""
    folder = Path(out)
    if not folder.is_dir():
        raise OptionsError(f"{folder}: no such folder")
    found = False
    tables: dict[str, pd.DataFrame] = {}
    for name in TABLES:
        parquet, csv = folder / f"{name}.parquet", folder / f"{name}.csv"
        if parquet.is_file():
            df = pd.read_parquet(parquet)
        elif csv.is_file():
            df = pd.read_csv(csv, dtype=str, keep_default_na=False, na_values=[""])
        else:
            tables[name] = frame(name, [])
            continue
        found = True
        tables[name] = _typed(name, df)
    if not found:
        raise OptionsError(f"{folder}: no tables of tshark-dicom in it (run analyze -o first)")
    captures = list(dict.fromkeys(tables["associations"]["capture"].tolist()
                                  + tables["findings"]["capture"].tolist()))
    return Report(**tables, captures=captures)


def _typed(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """A table as read from disk, with the schema's columns and dtypes."""
    out: dict[str, Any] = {}
    for col, dtype in SCHEMAS[table].items():
        values = df[col] if col in df.columns else pd.Series([None] * len(df), dtype=object)
        if dtype == "object":  # lists: arrays from Parquet, JSON arrays in CSV
            out[col] = values.map(_list_value)
        elif dtype.startswith("datetime64"):
            out[col] = pd.to_datetime(values, utc=True).astype(cast(Any, dtype))
        elif dtype == "bool":
            out[col] = values.map(lambda v: v if isinstance(v, bool) else str(v) == "True")
            out[col] = out[col].astype(bool)
        elif dtype == "boolean":
            out[col] = values.map(lambda v: None if v is None or v is pd.NA or v != v else
                                  v if isinstance(v, bool) else str(v) == "True")
            out[col] = out[col].astype("boolean")
        elif dtype in ("Int64", "Float64"):
            out[col] = pd.to_numeric(values, errors="coerce").astype(cast(Any, dtype))
        else:
            out[col] = values.astype("string")
    frame_ = pd.DataFrame(out, index=pd.RangeIndex(len(df)))
    if table == "query_keys":  # CSV cannot tell "" from null: only a sequence has no value
        blank = frame_["value"].isna() & (frame_["vr"] != "SQ").fillna(True)
        frame_.loc[blank, "value"] = ""
    return frame_


def _list_value(v: object) -> list[Any] | None:
    if isinstance(v, str):
        return list(json.loads(v)) if v.startswith("[") else v.split(" ") if v else None
    if v is None or not hasattr(v, "__len__"):
        return None
    return [x.item() if hasattr(x, "item") else x for x in v]  # type: ignore[attr-defined]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _counts(col: pd.Series) -> str:
    top = col.value_counts().head(6)
    return " (" + ", ".join(f"{n} {c}" for c, n in top.items()) + ")"


def _csv(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """Lists (proposed transfer syntaxes, query keys, callback ids) become JSON arrays in CSV:
values may hold spaces and commas."""
    out = df.copy()
    for col, dtype in SCHEMAS[table].items():
        if dtype == "object":
            out[col] = out[col].map(lambda v: json.dumps(list(v)) if isinstance(v, list) else v)
    return out


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path)


def _atomic(path: Path, write: object) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)  # type: ignore[operator]
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def replace_results(staging: Path, out: Path) -> None:
    """Move a finished run from ``staging`` into ``out``, removing the previous run's
    tables, objects and report first, so results are never mixed."""
    out.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        for ext in ("parquet", "csv"):
            (out / f"{name}.{ext}").unlink(missing_ok=True)
    for extra in ("report.html", "summary.txt"):
        (out / extra).unlink(missing_ok=True)
    if (out / "objects").exists():
        shutil.rmtree(out / "objects")
    for item in staging.iterdir():
        os.replace(item, out / item.name)
    staging.rmdir()
